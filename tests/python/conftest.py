import os
import sys

import pytest

BUILD = os.environ.get("PD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "dev"))
sys.path.insert(0, os.path.join(BUILD, "python"))


@pytest.fixture
def plugin_dir():
    return os.environ.get("PD_PLUGIN_DIR", os.path.join(BUILD, "plugins"))


@pytest.fixture
def payload(tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 999)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data
