"""pd-coordinator as a process: init (key shown once, --regenerate-key), serve, restart,
administrators' credentials and roles, and the admin API from Python (peerdist.Admin over
the C ABI) and from its own CLI."""
import json
import os
import re
import sqlite3
import stat
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
    def __init__(self, db, command=None):
        self.log = open(str(db) + ".log", "w+")
        command = command or [COORDINATOR, "serve", "--db", str(db), "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(command,
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


def key_admin(*args):
    return subprocess.run([COORDINATOR, "admin-key"] + [str(a) for a in args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def coordinator(tmp_path):
    """A running coordinator, its first administrator's credential, and its database."""
    db = tmp_path / "c.db"
    out = init(db, "--key-out", str(tmp_path / "key"), "--admin-out", str(tmp_path / "admin.cred"))
    assert out.returncode == 0, out.stderr
    server = Server(db)
    yield server, str(tmp_path / "admin.cred"), db
    server.stop()


def test_init_shows_the_keys_once_and_regenerating_the_fleet_key_keeps_the_administrators(tmp_path):
    db = tmp_path / "c.db"
    first = init(db, "--admin-out", str(tmp_path / "admin.cred"))
    assert first.returncode == 0
    key = re.search(r"^([0-9a-f]{64})$", first.stdout, re.M).group(1)
    coordinator_key = re.search(r"^coordinator key: ([0-9a-f]{64})$", first.stdout, re.M).group(1)
    cred = (tmp_path / "admin.cred").read_text()
    assert "coordinator_key = " + coordinator_key in cred and key not in cred
    assert stat.S_IMODE((tmp_path / "admin.cred").stat().st_mode) == 0o600
    again = init(db)
    assert again.returncode != 0 and "already initialised" in again.stderr
    regenerated = init(db, "--regenerate-key")
    assert regenerated.returncode == 0 and "shared key mismatch" in regenerated.stdout
    assert re.search(r"^([0-9a-f]{64})$", regenerated.stdout, re.M).group(1) != key
    assert "coordinator key: " + coordinator_key in regenerated.stdout  # administrators keep working
    server = Server(db)
    try:
        with peerdist.Admin(server.address, str(tmp_path / "admin.cred"), 3000) as admin:
            assert admin.health()["database"] == "ok"
            assert admin.whoami() == {"name": "admin", "role": "admin"}
    finally:
        server.stop()


def test_admin_keys_roles_revocation_and_the_fleet_key_refused(coordinator, tmp_path, host_bin):
    """The attack of issue #16 from the command line: a device's fleet key does not
    administer; a viewer reads and changes nothing; a revoked administrator is refused on
    the next operation, while the server runs."""
    server, cred, db = coordinator
    pd = os.path.join(host_bin, "pd")

    def run(credential, *args):
        return subprocess.run([pd, "admin", "--coordinator", server.address, "--credential", str(credential)] + list(args),
                              capture_output=True, text=True, timeout=30)

    out = subprocess.run([pd, "admin", "--coordinator", server.address, "--key-file", str(tmp_path / "key"), "health"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "the fleet key does not authorise admin operations" in out.stderr
    out = subprocess.run([COORDINATOR, "admin", "--connect", server.address, "--key-file", str(tmp_path / "key"), "health"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "the fleet key does not authorise admin operations" in out.stderr
    # A fleet key handed over as a credential is not one.
    out = run(tmp_path / "key", "health")
    assert out.returncode == 1 and "expected NAME = VALUE" in out.stderr, out.stderr

    viewer = tmp_path / "viewer.cred"
    out = key_admin("add", "--db", db, "--name", "carol", "--role", "viewer", "--out", viewer)
    assert out.returncode == 0, out.stderr
    assert run(viewer, "health").returncode == 0
    assert json.loads(run(viewer, "whoami").stdout) == {"name": "carol", "role": "viewer"}
    out = run(viewer, "group-set", "all", "--devices", "pc-1")
    assert out.returncode == 1 and "administrator 'carol' is a viewer: 'admin.groups.set' changes the coordinator" in out.stderr
    assert key_admin("add", "--db", db, "--name", "carol", "--out", tmp_path / "x.cred").returncode == 1  # names are unique
    assert key_admin("add", "--db", db, "--name", "eve", "--role", "root", "--out", tmp_path / "x.cred").returncode == 2

    assert run(cred, "group-set", "all", "--devices", "pc-1").returncode == 0
    admins = json.loads(run(viewer, "admins").stdout)["admins"]
    assert [(a["name"], a["role"], a["revoked_ms"]) for a in admins] == [("admin", "admin", 0), ("carol", "viewer", 0)]

    out = key_admin("revoke", "--db", db, "--name", "carol")
    assert out.returncode == 0, out.stderr
    out = run(viewer, "health")
    assert out.returncode == 4 and "administrator 'carol' was revoked" in out.stderr, out.stderr  # refused
    assert "carol,viewer," in key_admin("list", "--db", db).stdout
    server.log.seek(0)
    log = server.log.read()
    assert "audit: administrator 'admin' (admin) from 127.0.0.1: admin.groups.set ok" in log
    assert "audit: administrator 'carol' (viewer) from 127.0.0.1: admin.groups.set refused" in log
    assert "audit: auth refused from 127.0.0.1: administrator 'carol' was revoked" in log

    # A credential others can read is refused before it is used.
    os.chmod(cred, 0o644)
    out = run(cred, "health")
    assert out.returncode == 1 and "can be read or changed by other users (mode 0644): chmod 600 it" in out.stderr


def test_serve_reads_its_options_from_a_config_file(tmp_path, host_bin):
    """pd-coordinator --config FILE: a section per command, as the packaged unit runs it; the
    command line still wins over the file, and a misspelt key in the file is refused."""
    db = tmp_path / "c.db"
    assert init(db, "--admin-out", str(tmp_path / "admin.cred")).returncode == 0
    conf = tmp_path / "coordinator.toml"
    conf.write_text('[serve]\ndb = "%s"\nlisten = "127.0.0.1:0"\nagent-versions = "0.4.0-0.9.0"\n' % db)
    server = Server(db, [COORDINATOR, "--config", str(conf), "serve"])
    try:
        out = subprocess.run([os.path.join(host_bin, "pd"), "admin", "--coordinator", server.address, "--credential",
                              str(tmp_path / "admin.cred"), "--json", "health"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["supported_agent_versions"].endswith("0.9.0")
    finally:
        server.stop()
    conf.write_text('[serve]\ndb = "%s"\nlisten = "127.0.0.1:0"\nhartbeat-ms = 2000\n' % db)
    out = subprocess.run([COORDINATOR, "--config", str(conf), "serve"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "hartbeat" in out.stderr, out.stderr


def test_a_database_from_0_4_gains_administrators_when_upgraded(tmp_path):
    """0.4.x databases (schema 1) have no coordinator key and no administrators: serve adds
    both tables' worth on first start, and admin-key add makes the first administrator."""
    db = tmp_path / "c.db"
    assert init(db).returncode == 0
    with sqlite3.connect(str(db)) as c:  # what 0.4 left behind
        c.execute("ALTER TABLE contents DROP COLUMN manifest")
        c.execute("DROP TABLE retired_contents")
        c.execute("DROP TABLE prestage")
        c.execute("DROP TABLE content_stats")
        c.execute("ALTER TABLE devices DROP COLUMN online_ms")
        c.execute("ALTER TABLE devices DROP COLUMN served_bytes")
        c.execute("DROP TABLE admins")
        c.execute("DROP TABLE device_keys")
        c.execute("ALTER TABLE contents DROP COLUMN publication")
        c.execute("DELETE FROM meta WHERE key='signing_key'")
        c.execute("PRAGMA user_version=1")
    server = Server(db)
    try:
        out = key_admin("add", "--db", db, "--name", "ops", "--out", tmp_path / "ops.cred")
        assert out.returncode == 0, out.stderr
        with peerdist.Admin(server.address, str(tmp_path / "ops.cred"), 3000) as admin:
            assert admin.whoami()["role"] == "admin"
            assert admin.health()["database"] == "ok"
    finally:
        server.stop()
    with sqlite3.connect(str(db)) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 4


def test_admin_from_python_and_state_across_a_restart(coordinator, tmp_path):
    server, cred, db = coordinator
    # A host name works wherever an address is taken; one that does not resolve says so.
    with peerdist.Admin("localhost:" + server.address.rsplit(":", 1)[1], cred) as by_name:
        assert by_name.whoami()["role"] == "admin"
    with pytest.raises(peerdist.errors.Error) as unresolved:
        peerdist.Admin("no-such-host.invalid:7400", cred, 3000)
    assert "no-such-host.invalid" in str(unresolved.value)
    with peerdist.Admin(server.address, cred) as admin:
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
        with peerdist.Admin(again.address, cred) as admin:
            assert admin.server_id() == server_id
            assert "Branch A WiFi,Branch A,WiFi,10.1.2.0/24" in admin.export_topology()
            health = admin.health()
            assert health["topology"] == "uploaded" and health["offices"] == 3 and health["contents"] == 1
            assert admin.devices_csv().startswith("device_id,name,address,office,")
    finally:
        again.stop()


def test_admin_cli(coordinator, tmp_path):
    server, cred, _ = coordinator
    bad = tmp_path / "bad.csv"
    bad.write_text("name,parent,type,ranges\nA,,Default,10.0.0.0/24\nB,A,Default,10.0.0.0/25\n")
    out = subprocess.run([COORDINATOR, "admin", "--connect", server.address, "--credential", cred,
                          "topology-import", str(bad)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "line 3: range 10.0.0.0/25 of 'B' overlaps 10.0.0.0/24 of 'A' (line 2)" in out.stderr
    out = subprocess.run([COORDINATOR, "admin", "--connect", server.address, "--credential", cred, "health"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and '"database": "ok"' in out.stdout


def test_pd_cli_admin(coordinator, tmp_path, host_bin):
    server, cred, _ = coordinator
    pd = os.path.join(host_bin, "pd")
    base = [pd, "admin", "--coordinator", server.address, "--credential", cred]
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
    server, cred, db = coordinator
    pd = os.path.join(host_bin, "pd")
    pkgs = tmp_path / "pkgs"
    pkgs.mkdir()
    ids = {}
    for name in ("agent.msi", "office.msi", "patch.msu"):
        (pkgs / name).write_bytes(os.urandom(150000))
        m = peerdist.Manifest.hash_file(str(pkgs / name))
        m.write(str(pkgs / (name + ".pdm")))
        ids[name] = m.id
    with peerdist.Admin(server.address, cred) as admin:
        admin.publish(peerdist.Manifest.read(str(pkgs / "agent.msi.pdm")), ["http://old-cdn/agent.msi"])

    def republish(*extra):
        return subprocess.run([pd, "admin", "--coordinator", server.address, "--credential", cred,
                               "republish-all", str(pkgs)] + list(extra), capture_output=True, text=True, timeout=30)

    out = republish("--origin-base", "http://new-cdn/pkgs")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["added"], report["updated"], report["unchanged"]) == (2, 1, 0), report
    status = {c["name"]: c["status"] for c in report["contents"]}
    assert status == {"agent.msi": "updated", "office.msi": "added", "patch.msu": "added"}
    again = json.loads(republish().stdout)  # no origins given: the recorded ones stay
    assert again["unchanged"] == 3, again

    # What republish-all stored drives distribution: a device starts from an id alone and
    # gets the manifest and the origin (here the publisher's share) from the catalogue.
    assert republish("--origin-base", "file://" + str(pkgs)).returncode == 0
    device = peerdist.Session(str(tmp_path / "device"))
    try:
        device.set_setting("trust.allow_unsigned", "1")
        device.set_setting("plugin.hierarchy.config", json.dumps({"coordinator": server.address,
                                                                  "fleet_key_file": str(tmp_path / "key")}))
        device.load_plugin(os.environ.get("PD_PLUGIN_DIR", os.path.join(BUILD, "plugins")))
        device.resolve(ids["office.msi"])
        status = peerdist.wait_job(device, device.start_job(ids["office.msi"], str(tmp_path / "office.msi")), timeout=60)
        assert status["state"] == "completed", status
        assert (tmp_path / "office.msi").read_bytes() == (pkgs / "office.msi").read_bytes()
    finally:
        device.close()
    # The same from the command line, by host name.
    out = subprocess.run([pd, "get", "--content", ids["patch.msu"], "--coordinator", "localhost:" + server.address.rsplit(":", 1)[1],
                          "--fleet-key", str(tmp_path / "key"), "--allow-unsigned", "--cache", str(tmp_path / "cli-cache"),
                          "--dest", str(tmp_path / "patch.msu")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "patch.msu").read_bytes() == (pkgs / "patch.msu").read_bytes()
    out = subprocess.run([pd, "get", "--content", "ab" * 32, "--coordinator", server.address, "--fleet-key", str(tmp_path / "key"),
                          "--cache", str(tmp_path / "cli-cache")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 3 and "is not in the catalogue" in out.stderr, out.stderr
    # Pre-staging from Python: accepted, then visible per office, then withdrawn.
    with peerdist.Admin(server.address, cred) as admin:
        admin.prestage(ids["patch.msu"], int(time.time() * 1000) + 3600 * 1000)
        [entry] = admin.prestage_status(ids["patch.msu"])
        assert entry["name"] == "patch.msu" and not entry["done"] and entry["offices"], entry
        admin.prestage_cancel(ids["patch.msu"])
        assert admin.prestage_status() == []

    # A damaged manifest beside the good ones: refused by name, nothing changes.
    (pkgs / "broken.pdm").write_bytes(b"PDM1" + os.urandom(64))
    out = republish("--origin-base", "http://other-cdn/")
    assert out.returncode == 1 and "broken.pdm" in out.stderr, out.stderr
    (pkgs / "broken.pdm").unlink()

    # A new coordinator on an empty database (the old server is gone): it knows no contents
    # until the manifests are republished, and keeps them across its own restart.
    server.stop()
    fresh_db = tmp_path / "fresh.db"
    assert init(fresh_db, "--admin-out", str(tmp_path / "admin2.cred")).returncode == 0
    fresh = Server(fresh_db)
    try:
        fresh_cred = str(tmp_path / "admin2.cred")
        with peerdist.Admin(fresh.address, fresh_cred) as admin:
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
        with peerdist.Admin(fresh.address, fresh_cred) as admin:
            assert admin.health()["contents"] == 3
    finally:
        fresh.stop()


def test_the_coordinator_keeps_the_publishers_record_and_hands_it_back(coordinator, tmp_path, host_bin):
    """pd admin publish takes MANIFEST.sig along; the coordinator checks it is a well-signed
    record of this content (it cannot make one: it holds no publisher key) and serves it."""
    server, cred, _ = coordinator
    pd = os.path.join(host_bin, "pd")
    pkg = tmp_path / "tool.msi"
    pkg.write_bytes(os.urandom(200000))
    subprocess.run([pd, "publisher-key", "--out", str(tmp_path / "pub.key")], check=True, capture_output=True)
    cid = subprocess.run([pd, "publish", str(pkg), "--origin", "http://cdn/tool.msi", "--sign", str(tmp_path / "pub.key"),
                          "--cache", str(tmp_path / "pc")], check=True, capture_output=True, text=True).stdout.strip()
    admin = [pd, "admin", "--coordinator", server.address, "--credential", cred]
    out = subprocess.run(admin + ["publish", str(pkg) + ".pdm"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    out = subprocess.run(admin + ["publication", cid, "--out", str(tmp_path / "back.sig")], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "back.sig").read_bytes() == (tmp_path / "tool.msi.pdm.sig").read_bytes()
    # A record that is not this content's is refused with the manifest.
    other = tmp_path / "other.msi"
    other.write_bytes(os.urandom(1000))
    subprocess.run([pd, "publish", str(other), "--cache", str(tmp_path / "pc")], check=True, capture_output=True)
    (tmp_path / "other.msi.pdm.sig").write_bytes((tmp_path / "tool.msi.pdm.sig").read_bytes())
    out = subprocess.run(admin + ["publish", str(other) + ".pdm"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "about another content" in out.stderr, out.stderr
