"""What the Windows lab tests need from ctest (tests/CMakeLists.txt sets them): the
directories of the two builds, and the netlab package on the path."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # netlab


def env_dir(name):
    path = os.environ.get(name)
    if not path:
        pytest.fail("%s is not set: run through ctest --preset windows-test" % name, pytrace=False)
    return path


@pytest.fixture
def windows_build():
    """(pd.exe / pd-agent.exe folder, plugin DLL folder) of the Windows build."""
    return env_dir("PD_WINDOWS_BIN"), env_dir("PD_WINDOWS_PLUGIN_DIR")


@pytest.fixture
def linux_build():
    """(pd / pd-agent folder, plugin folder) of the Linux build."""
    return env_dir("PD_HOST_BIN"), env_dir("PD_PLUGIN_DIR")
