"""Running this thread inside a lab namespace for a while: sockets it opens and processes it
starts live there (Linux's setns changes the network namespace of the calling thread only).
The console's browser test drives Chromium from the coordinator's namespace this way, so the
browser reaches the console at the address agents use."""
import contextlib
import ctypes
import os

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: " + os.strerror(err))


@contextlib.contextmanager
def inside(ns_name):
    """Within the block, this thread's sockets and children are in namespace `ns_name`."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(os.path.join("/var/run/netns", ns_name), os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)
