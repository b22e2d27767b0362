"""Exceptions raised by peerdist: one class per C error code, under peerdist.Error. Each also
subclasses the built-in exception a Python programmer would catch for it, so
``except FileNotFoundError`` or ``except TimeoutError`` work as they do for the standard
library (``NotFoundError`` is a ``FileNotFoundError``, ``AuthError`` a ``PermissionError``...)."""


class Error(Exception):
    """A peerdist call failed. ``code`` is the C pd_error_code, ``category`` its subsystem."""

    code = -1

    def __init__(self, message, code=None, category=0):
        Exception.__init__(self, message)  # not OSError's (errno, strerror) form: str(e) is the message
        if code is not None:
            self.code = code
        self.category = category
        self.message = message


class MisuseError(Error, ValueError):
    code = -2


class NotFoundError(Error, FileNotFoundError):
    code = -3


class ExistsError(Error, FileExistsError):
    code = -4


class VersionError(Error, ValueError):
    code = -7


class AuthError(Error, PermissionError):
    code = -8


class InvalidError(Error, ValueError):
    code = -9


class IntegrityError(Error, ValueError):
    code = -10


class IOError_(Error, OSError):
    code = -11


class NoSpaceError(Error, OSError):
    code = -12


class QuotaError(Error, OSError):
    code = -13


class PluginError(Error, ImportError):
    code = -14


class CancelledError(Error):
    code = -15


class TimeoutError_(Error, TimeoutError):
    code = -16


class BusyError(Error, BlockingIOError):
    code = -18


class ReadOnlyError(Error, PermissionError):
    code = -19


class ChangedError(Error):
    code = -20


class StateError(Error, RuntimeError):
    code = -22


class NoSourceError(Error):
    code = -23


_BY_CODE = {cls.code: cls for cls in Error.__subclasses__()}
# The built-in names, for code that prefers them: peerdist.errors.TimeoutError is TimeoutError_.
TimeoutError = TimeoutError_  # noqa: A001
IOError = IOError_  # noqa: A001


def from_code(code, category, message):
    """Build the exception for a C error code (used by the native module)."""
    cls = _BY_CODE.get(code, Error)
    return cls(message, code, category)
