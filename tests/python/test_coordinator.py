"""pd-coordinator as a process: init (key shown once, --regenerate-key), serve, restart,
and the admin API from Python (peerdist.Admin over the C ABI) and from its own CLI."""
import json
import os
import re
import subprocess
import time

import pytest

import peerdist

BUILD = os.environ.get("PD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build", "dev"))
COORDINATOR = os.path.join(BUILD, "coordinator", "pd-coordinator")

TOPOLOGY = ("name,parent,type,ranges\n"
            "Central Office,,Default,10.0.0.0/24\n"
            "Branch A,Central Office,Default,10.1.0.0/24\n"
            "Branch A WiFi,Branch A,WiFi,10.1.2.0/24\n")


def init(db, *extra):
    out = subprocess.run([COORDINATOR, "init", "--db", str(db)] + list(extra), capture_output=True, text=True, timeout=30)
    return out


class Server:
    def __init__(self, db):
        self.log = open(str(db) + ".log", "w+")
        self.proc = subprocess.Popen([COORDINATOR, "serve", "--db", str(db), "--listen", "127.0.0.1:0"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            self.log.seek(0)
            m = re.search(r"listening on (\S+)", self.log.read())
            if m:
                self.address = m.group(1)
                return
            assert self.proc.poll() is None and time.monotonic() < deadline, "pd-coordinator did not start"
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def coordinator(tmp_path):
    db = tmp_path / "c.db"
    out = init(db, "--key-out", str(tmp_path / "key"))
    assert out.returncode == 0, out.stderr
    server = Server(db)
    yield server, bytes.fromhex((tmp_path / "key").read_text().strip()), db
    server.stop()


def test_init_shows_the_key_once_and_regenerating_it_locks_out_the_old_one(tmp_path):
    db = tmp_path / "c.db"
    first = init(db)
    assert first.returncode == 0
    key = re.search(r"^([0-9a-f]{64})$", first.stdout, re.M).group(1)
    again = init(db)
    assert again.returncode != 0 and "already initialised" in again.stderr
    regenerated = init(db, "--regenerate-key")
    assert regenerated.returncode == 0 and "shared key mismatch" in regenerated.stdout
    new_key = re.search(r"^([0-9a-f]{64})$", regenerated.stdout, re.M).group(1)
    assert new_key != key
    server = Server(db)
    try:
        with pytest.raises(peerdist.errors.AuthError, match="shared key mismatch"):
            peerdist.Admin(server.address, bytes.fromhex(key), 3000)
        with peerdist.Admin(server.address, bytes.fromhex(new_key), 3000) as admin:
            assert admin.health()["database"] == "ok"
    finally:
        server.stop()


def test_admin_from_python_and_state_across_a_restart(coordinator, tmp_path):
    server, key, db = coordinator
    with peerdist.Admin(server.address, key) as admin:
        server_id = admin.server_id()
        assert re.fullmatch(r"[0-9a-f]{32}", server_id)
        admin.import_topology(TOPOLOGY)
        with pytest.raises(peerdist.errors.InvalidError) as refused:
            admin.import_topology(TOPOLOGY + "Branch A,Central Office,Default,10.9.0.0/24\nZ,Y,Default,\n")
        assert "line 5: duplicate office name 'Branch A' (first on line 3)" in str(refused.value)
        assert "line 6: unknown parent 'Y'" in str(refused.value)
        pkg = tmp_path / "pkg.bin"
        pkg.write_bytes(os.urandom(300000))
        m = peerdist.Manifest.hash_file(str(pkg))
        admin.publish(m, ["http://cdn.example/pkg.bin"])
        admin.set_group("pilot", ["pc-1", "pc-2"], [m.id])
        assert admin.health()["contents"] == 1
        assert admin.office_stats() == []
        assert admin.rvp("Branch A") == ""
    # Everything comes back after a restart.
    server.stop()
    again = Server(db)
    try:
        with peerdist.Admin(again.address, key) as admin:
            assert admin.server_id() == server_id
            assert "Branch A WiFi,Branch A,WiFi,10.1.2.0/24" in admin.export_topology()
            health = admin.health()
            assert health["topology"] == "uploaded" and health["offices"] == 3 and health["contents"] == 1
            assert admin.devices_csv().startswith("device_id,name,address,office,")
    finally:
        again.stop()


def test_admin_cli(coordinator, tmp_path):
    server, key, _ = coordinator
    keyfile = tmp_path / "key"
    bad = tmp_path / "bad.csv"
    bad.write_text("name,parent,type,ranges\nA,,Default,10.0.0.0/24\nB,A,Default,10.0.0.0/25\n")
    out = subprocess.run([COORDINATOR, "admin", "--connect", server.address, "--key-file", str(keyfile),
                          "topology-import", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "line 3: range 10.0.0.0/25 of 'B' overlaps 10.0.0.0/24 of 'A' (line 2)" in out.stderr
    out = subprocess.run([COORDINATOR, "admin", "--connect", server.address, "--key-file", str(keyfile), "health"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and '"database": "ok"' in out.stdout


def test_pd_cli_admin(coordinator, tmp_path, host_bin):
    server, key, _ = coordinator
    pd = os.path.join(host_bin, "pd")
    base = [pd, "admin", "--coordinator", server.address, "--key-file", str(tmp_path / "key")]
    topo = tmp_path / "t.csv"
    topo.write_text(TOPOLOGY)
    out = subprocess.run(base + ["topology-import", str(topo)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    topo.write_text(TOPOLOGY + "Loop,Loop,Default,\n")
    out = subprocess.run(base + ["topology-import", str(topo)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "line 5: office 'Loop' is in a cycle: Loop -> Loop" in out.stderr, out.stderr
    out = subprocess.run(base + ["stats"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout == "office,origin_bytes,wan_bytes,lan_bytes\n"
    out = subprocess.run(base + ["topology-export"], capture_output=True, text=True, timeout=30)
    assert "Branch A WiFi,Branch A,WiFi,10.1.2.0/24" in out.stdout


def test_republish_all_rebuilds_a_new_coordinator_and_moves_origins(coordinator, tmp_path, host_bin):
    """A coordinator rebuilt on an empty database learns every content back from the
    publisher's manifests (pd publish writes FILE.pdm beside FILE); a CDN move gives every
    content its new origin in one call; a damaged manifest stores nothing."""
    server, key, db = coordinator
    pd = os.path.join(host_bin, "pd")
    pkgs = tmp_path / "pkgs"
    pkgs.mkdir()
    ids = {}
    for name in ("agent.msi", "office.msi", "patch.msu"):
        (pkgs / name).write_bytes(os.urandom(150000))
        m = peerdist.Manifest.hash_file(str(pkgs / name))
        m.write(str(pkgs / (name + ".pdm")))
        ids[name] = m.id
    with peerdist.Admin(server.address, key) as admin:
        admin.publish(peerdist.Manifest.read(str(pkgs / "agent.msi.pdm")), ["http://old-cdn/agent.msi"])

    def republish(*extra):
        return subprocess.run([pd, "admin", "--coordinator", server.address, "--key-file", str(tmp_path / "key"),
                               "republish-all", str(pkgs)] + list(extra), capture_output=True, text=True, timeout=30)

    out = republish("--origin-base", "http://new-cdn/pkgs")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["added"], report["updated"], report["unchanged"]) == (2, 1, 0), report
    status = {c["name"]: c["status"] for c in report["contents"]}
    assert status == {"agent.msi": "updated", "office.msi": "added", "patch.msu": "added"}
    again = json.loads(republish().stdout)  # no origins given: the recorded ones stay
    assert again["unchanged"] == 3, again

    # A damaged manifest beside the good ones: refused by name, nothing changes.
    (pkgs / "broken.pdm").write_bytes(b"PDM1" + os.urandom(64))
    out = republish("--origin-base", "http://other-cdn/")
    assert out.returncode == 1 and "broken.pdm" in out.stderr, out.stderr
    (pkgs / "broken.pdm").unlink()

    # A new coordinator on an empty database (the old server is gone): it knows no contents
    # until the manifests are republished, and keeps them across its own restart.
    server.stop()
    fresh_db = tmp_path / "fresh.db"
    assert init(fresh_db, "--key-out", str(tmp_path / "key2")).returncode == 0
    fresh = Server(fresh_db)
    try:
        fresh_key = bytes.fromhex((tmp_path / "key2").read_text().strip())
        with peerdist.Admin(fresh.address, fresh_key) as admin:
            assert admin.health()["contents"] == 0
            entries = [(peerdist.Manifest.read(str(pkgs / (n + ".pdm"))), ["http://new-cdn/pkgs/" + n]) for n in sorted(ids)]
            report = admin.republish_all(entries)
            assert report["added"] == 3, report
            with pytest.raises(peerdist.errors.InvalidError):
                admin.republish_all([])
    finally:
        fresh.stop()
    fresh = Server(fresh_db)
    try:
        with peerdist.Admin(fresh.address, fresh_key) as admin:
            assert admin.health()["contents"] == 3
    finally:
        fresh.stop()
