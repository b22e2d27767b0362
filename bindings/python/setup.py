"""The native part of the peerdist package, built against an installed SDK (pyproject.toml).
Include and library folders come from `pkg-config peerdist`; a prefix outside the linker's
default folders is also recorded as the module's run path, so the module finds its library."""
import shlex
import subprocess

from pybind11.setup_helpers import Pybind11Extension
from setuptools import setup


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args, "peerdist"], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("peerdist: the SDK is not installed where pkg-config looks (set PKG_CONFIG_PATH to "
                         "PREFIX/lib/pkgconfig): %s" % getattr(e, "stderr", e))
    return shlex.split(out)


include_dirs = [f[2:] for f in pkg_config("--cflags-only-I")]
library_dirs = [f[2:] for f in pkg_config("--libs-only-L")]
system = ("/usr/lib", "/lib", "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu")
setup(ext_modules=[Pybind11Extension(
    "peerdist._native", ["src/module.cpp", "src/admin.cpp"], include_dirs=include_dirs + ["src"],
    library_dirs=library_dirs, libraries=["peerdist"],
    runtime_library_dirs=[d for d in library_dirs if d.rstrip("/") not in system], cxx_std=17)])
