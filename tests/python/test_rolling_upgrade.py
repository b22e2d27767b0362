"""A rolling upgrade: agents of the previous release and of this tree in one office, serving
each other through the secure channel (the new side offers AES-256-GCM in its HELLO nonce,
the old one never sees an offer and both settle on XChaCha20-Poly1305).

Needs a build of the previous release: PD_PREVIOUS_HOST_BIN (its host-sample directory, with
pd-agent) and PD_PREVIOUS_PLUGIN_DIR. Skipped without them; docs/testing.md says how to run
it. CI does not build a second tree."""
import io
import os

import pytest

from netlab.fleet import Fleet
from netlab.lab import Office

previous_bin = os.environ.get("PD_PREVIOUS_HOST_BIN")
previous_plugins = os.environ.get("PD_PREVIOUS_PLUGIN_DIR")
needs_previous = pytest.mark.skipif(not (previous_bin and previous_plugins) or os.geteuid() != 0,
                                    reason="PD_PREVIOUS_HOST_BIN / PD_PREVIOUS_PLUGIN_DIR not set, or not root")


def downgrade(fleet, name):
    a = fleet.agents[name]
    a.stop()
    a.binary = os.path.join(previous_bin, "pd-agent")
    a.config["plugin_dir"] = previous_plugins
    a.start()
    fleet.lab.procs.append(a.proc)


@needs_previous
def test_old_and_new_agents_serve_each_other(tmp_path, host_bin, plugin_dir):
    # Network namespaces and branchcache discovery (unchanged between the versions): a
    # restarted agent keeps its address and port.
    with Fleet(tmp_path / "f", [Office("office", devices=3)], host_bin, plugin_dir, p2p=True) as fleet:
        downgrade(fleet, "office-1")
        downgrade(fleet, "office-3")
        data, manifest, url = fleet.publish_random(16 << 20)
        # old -> new: office-1 (previous release) seeds, office-2 (this tree) takes it all from it.
        st = fleet.watch(fleet.deploy(manifest, url, devices=["office-1"]), out=io.StringIO())["office-1"]
        assert st["state"] == "completed", st
        got = fleet.watch(fleet.deploy(manifest, url, devices=["office-2"], dest_dir=str(tmp_path)),
                          out=io.StringIO())["office-2"]
        assert got["state"] == "completed" and got["bytes_by_source"]["lan"] == len(data), got
        assert (tmp_path / "office-2.bin").read_bytes() == data
        # new -> old: office-1 stops; office-3 (previous release) can only get it from office-2.
        fleet.agents["office-1"].stop()
        got = fleet.watch(fleet.deploy(manifest, url, devices=["office-3"], dest_dir=str(tmp_path)),
                          out=io.StringIO())["office-3"]
        assert got["state"] == "completed" and got["bytes_by_source"]["lan"] == len(data), got
        assert (tmp_path / "office-3.bin").read_bytes() == data
