"""The soak's short CI version: bench/soak.py --hierarchy for one minute (the full run is a
benchmark, docs/benchmarks.md). Four agents in two offices deploy fresh packages back to
back while rogue peers stall, lie, send garbage and drip, silent sockets hold every agent's
and the coordinator's port, an agent is killed with SIGKILL at 30 s and the coordinator at
40 s. The program fails on any incomplete or wrong delivery, any process that exits on its
own, and an agent past its memory bound."""
import os
import re
import subprocess
import sys

import pytest

from conftest import BUILD

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
SOAK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "soak.py")


@root_only
def test_a_fleet_under_attack_completes_every_deployment(tmp_path, host_bin, plugin_dir):
    env = dict(os.environ, PD_BENCH_DIR=str(tmp_path), PD_HOST_BIN=host_bin, PD_PLUGIN_DIR=plugin_dir)
    run = subprocess.run([sys.executable, SOAK, BUILD, "1", "4", "16", "--hierarchy"], capture_output=True, text=True,
                         timeout=600, env=env)
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "every device complete and byte-exact" in run.stdout
    killed = re.search(r"agents killed and restarted: (\d+); coordinator restarts: (\d+)", run.stdout)
    assert killed and int(killed.group(1)) >= 1 and int(killed.group(2)) >= 1, run.stdout
