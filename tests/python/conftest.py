import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("PD_BUILD_DIR", os.path.join(HERE, "..", "..", "build", "dev"))
sys.path.insert(0, os.path.join(BUILD, "python"))
sys.path.insert(0, os.path.join(HERE, ".."))  # the netlab package


@pytest.fixture
def plugin_dir():
    return os.environ.get("PD_PLUGIN_DIR", os.path.join(BUILD, "plugins"))


@pytest.fixture
def host_bin():
    path = os.environ.get("PD_HOST_BIN", os.path.join(BUILD, "host-sample"))
    if not os.path.exists(os.path.join(path, "pd-agent")):
        pytest.fail("pd-agent is not built at %s: run through ctest (install_and_build_host)" % path, pytrace=False)
    return path


@pytest.fixture
def payload(tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 999)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data
