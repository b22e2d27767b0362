"""pd-agent: config checking, control socket, jobs, crash and clean shutdown, the CLI via the agent."""
import json
import os
import signal
import subprocess
import time

import pytest

import peerdist
from netlab.agent import Agent, AgentError, ControlClient, write_key


@pytest.fixture
def published(tmp_path):
    data = os.urandom(12 * 1024 * 1024 + 4321)
    src = tmp_path / "share" / "Setup.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    m = peerdist.Manifest.hash_file(str(src))
    m.write(str(tmp_path / "Setup.pdm"))
    return src, data, str(tmp_path / "Setup.pdm")


@pytest.fixture
def agent(tmp_path, host_bin, plugin_dir):
    a = Agent(os.path.join(host_bin, "pd-agent"), tmp_path / "agent", plugin_dir=plugin_dir)
    yield a
    a.kill()


def test_download_jobs_cache_and_facts(agent, published, tmp_path):
    src, data, manifest = published
    agent.start()
    r = agent.ok("download", manifest=manifest, origin=str(src), dest=str(tmp_path / "out.bin"))
    st = agent.wait_job(r["job"])
    assert st["state"] == "completed", st
    assert (tmp_path / "out.bin").read_bytes() == data
    assert st["bytes_by_source"]["origin"] == len(data)
    assert [j["job"] for j in agent.ok("jobs")["jobs"]] == [r["job"]]
    cache = agent.ok("cache")["cache"]
    assert cache[0]["state"] == "complete" and cache[0]["name"] == "Setup.bin"
    facts = agent.ok("facts")["facts"]
    assert facts["free_bytes"] > 0 and facts["uptime_seconds"] > 0
    agent.ok("evict", content=cache[0]["content"])
    assert agent.ok("cache")["cache"] == []
    assert agent.stop() == 0


def test_control_socket_survives_garbage_and_huge_lines(agent):
    agent.start()
    c = ControlClient(agent.socket)
    c.send_raw(b"this is not json\n")
    assert c.read_reply() == {"ok": False, "error": "request is not valid JSON"}
    c.send_raw(b'{"cmd": 42}\n[1,2]\n{"cmd":"nope","id":7}\n{"cmd":"job"}\n')
    assert "string 'cmd'" in c.read_reply()["error"]
    assert "string 'cmd'" in c.read_reply()["error"]
    r = c.read_reply()
    assert r["id"] == 7 and "unknown command" in r["error"]
    assert "needs the argument 'job'" in c.read_reply()["error"]
    # Arguments of the wrong type are refused by name; a null setting value once aborted the agent.
    c.send_raw(b'{"cmd":"setting","key":"log.level","value":null}\n{"cmd":"job","job":"1"}\n{"cmd":"jobs","x":1}\n')
    assert "'value' must be" in c.read_reply()["error"]
    assert "'job' must be a non-negative integer" in c.read_reply()["error"]
    assert "takes no argument 'x'" in c.read_reply()["error"]
    assert c.call("version")["ok"]
    # A huge line: the agent answers and disconnects (the reply may be lost to a reset if
    # the client is still sending when the agent closes; the disconnect is what matters).
    try:
        c.send_raw(b"x" * ((1 << 20) + 1024))
        reply = c.read_reply()
        assert "longer than 1 MiB" in reply["error"]
        with pytest.raises((AgentError, OSError)):
            c.call("version")
    except (BrokenPipeError, ConnectionResetError):
        pass
    c.close()
    # Everyone else keeps going.
    assert agent.ok("version")["version"] == peerdist.version()


@pytest.mark.parametrize("mutate, expect", [
    (lambda c: c.update(bogus=1), "unknown key 'bogus'"),
    (lambda c: c.pop("cache_dir"), "'cache_dir' is required"),
    (lambda c: c.update(fleet_key_file="/nonexistent/fleet.key"), "reading the fleet key file '/nonexistent/fleet.key': No such file or directory"),
    (lambda c: c.update(quota_percent=300), "quota_percent"),
    (lambda c: c.update(log_level="loud"), "log_level"),
    (lambda c: c.update(settings={"job.max_pieces_in_flight": 0}), "must be in [1, 256]"),
    (lambda c: c.update(device={"colour": "blue"}), "device.colour"),
])
def test_bad_config_is_refused_with_a_clear_message(agent, mutate, expect):
    mutate(agent.config)
    with pytest.raises(AgentError) as e:
        agent.start(timeout=10)
    assert expect in str(e.value), str(e.value)


def test_config_that_is_not_json(agent):
    agent.write_config()
    with open(agent.config_path, "w") as f:
        f.write("{ not json")
    with pytest.raises(AgentError) as e:
        agent.start(timeout=10, write_config=False)
    assert "not valid JSON" in str(e.value)


def test_fleet_key_file_and_device_overrides(agent, tmp_path):
    key = tmp_path / "fleet.key"
    write_key(key)
    # No plugins: with a fleet key, branchcache would join its multicast group on the host.
    agent.config.pop("plugin_dir")
    agent.config.update(fleet_key_file=str(key), device={"chassis": "server", "os_type": "server"})
    agent.start()
    facts = agent.ok("facts")["facts"]
    assert facts["chassis"] == "server" and facts["os_type"] == "server"
    # Keys are random: text a person chose (the old "32 raw bytes" form), a key with little
    # randomness, or a file others can read would let guesses be tested offline.
    second = Agent(agent.binary, tmp_path / "second", extra={"fleet_key_file": str(key)})
    for text, why in [("short", "must hold a random key as 64 hex digits"),
                      ("correct horse battery staple 32b", "must hold a random key as 64 hex digits"),
                      ("ab" * 32, "must hold a random key as 64 hex digits")]:
        write_key(key, text)
        with pytest.raises(AgentError) as e:
            second.start(timeout=10)
        assert why in str(e.value)
    write_key(key)
    os.chmod(key, 0o640)
    with pytest.raises(AgentError) as e:
        second.start(timeout=10)
    assert "can be read or changed by other users (mode 0640)" in str(e.value)


def test_second_agent_on_the_same_cache_is_refused(agent, tmp_path):
    agent.start()
    other = Agent(agent.binary, tmp_path / "other", extra={"cache_dir": agent.config["cache_dir"]})
    with pytest.raises(AgentError) as e:
        other.start(timeout=10)
    assert "in use by another process" in str(e.value)
    assert agent.ok("version")["ok"]


def test_second_agent_on_the_same_control_socket_is_refused_and_a_stale_one_replaced(agent, tmp_path):
    # Another agent (its own cache) must not take over a live agent's socket; a socket file
    # left by a crash is replaced.
    agent.start()
    other = Agent(agent.binary, tmp_path / "other", extra={"control_socket": agent.socket})
    other.socket = agent.socket
    other.write_config()
    refused = subprocess.run(other.command(), capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "another agent is listening" in refused.stderr, refused.stderr
    assert agent.ok("version")["ok"]
    agent.kill()  # SIGKILL: the socket file stays behind
    assert os.path.exists(agent.socket)
    other.start(timeout=10)
    assert other.ok("version")["ok"]
    other.kill()


def test_sigkill_mid_download_then_restart_resumes(agent, published, tmp_path):
    src, data, manifest = published
    agent.config["plugins"] = {"origin": {"max_rate_bytes": 4 << 20}}
    agent.start()
    job = agent.ok("download", manifest=manifest, origin=str(src), dest=str(tmp_path / "out.bin"))["job"]
    deadline = time.monotonic() + 30
    while agent.ok("job", job=job)["status"]["bytes_verified"] < len(data) // 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = agent.ok("job", job=job)["status"]["bytes_verified"]
    agent.kill()
    agent.config["plugins"] = {"origin": {"max_rate_bytes": 0}}
    agent.start()
    job = agent.ok("download", manifest=manifest, origin=str(src), dest=str(tmp_path / "out.bin"))["job"]
    st = agent.wait_job(job)
    assert st["state"] == "completed", st
    assert st["bytes_by_source"]["local"] >= before
    assert st["bytes_by_source"]["local"] + st["bytes_by_source"]["origin"] == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data


def test_sigterm_keeps_verified_blocks(agent, published, tmp_path):
    src, data, manifest = published
    agent.config["plugins"] = {"origin": {"max_rate_bytes": 4 << 20}}
    agent.start()
    job = agent.ok("download", manifest=manifest, origin=str(src))["job"]
    while agent.ok("job", job=job)["status"]["bytes_verified"] < len(data) // 4:
        time.sleep(0.05)
    t0 = time.monotonic()
    assert agent.stop() == 0
    assert time.monotonic() - t0 < 10
    assert "stopping on signal" in agent.log()
    s = peerdist.Session(agent.config["cache_dir"])  # the lock was released
    entry = s.cache_list()[0]
    assert entry["state"] == "partial" and entry["bytes_verified"] >= len(data) // 4
    s.close()


def test_pd_cli_through_the_agent(agent, published, host_bin, tmp_path):
    src, data, manifest = published
    agent.start()
    pd = os.path.join(host_bin, "pd")
    out = tmp_path / "via-agent.bin"
    p = subprocess.run([pd, "--agent", agent.socket, "get", manifest, "--origin", str(src), "--dest", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "100.0%" in p.stdout and "completed" in p.stdout
    assert "\x1b" not in p.stdout  # not a terminal: no escape sequences
    assert out.read_bytes() == data
    p = subprocess.run([pd, "--agent", agent.socket, "status", "--once"], capture_output=True, text=True, timeout=30)
    assert "completed" in p.stdout
    p = subprocess.run([pd, "--agent", agent.socket, "status", "--json"], capture_output=True, text=True, timeout=30)
    jobs = json.loads(p.stdout)
    assert [j["state"] for j in jobs] == ["completed"] and jobs[0]["bytes_verified"] == len(data)
    p = subprocess.run([pd, "--agent", agent.socket, "cache"], capture_output=True, text=True, timeout=30)
    assert "Setup.bin" in p.stdout and "complete" in p.stdout
    p = subprocess.run([pd, "--agent", agent.socket, "cancel", "999"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 3 and "no job with id 999" in p.stderr  # not found
    p = subprocess.run([pd, "--agent", agent.socket, "cancel", "abc"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "not a whole number" in p.stderr  # usage, not "stoull"
    p = subprocess.run([pd, "--agent", str(tmp_path / "nope.sock"), "status"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 5 and "cannot reach pd-agent" in p.stderr  # unreachable


def test_listen_port_in_use_is_refused(agent, tmp_path):
    import socket
    key = tmp_path / "fleet.key"
    write_key(key)
    agent.config["fleet_key_file"] = str(key)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        agent.config["listen"] = "127.0.0.1:%d" % holder.getsockname()[1]
        with pytest.raises(AgentError) as e:
            agent.start(timeout=10)
        assert "already in use" in str(e.value), str(e.value)
    finally:
        holder.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_control_socket_is_owner_only_and_checks_who_connects(agent):
    """The socket is created 0600 (no window after bind), and a client of another user is
    refused even when the socket's mode would let it connect."""
    agent.start()
    assert os.stat(agent.socket).st_mode & 0o777 == 0o600
    os.chmod(agent.socket, 0o666)
    os.chmod(os.path.dirname(agent.socket), 0o755)
    probe = ("import socket,sys\n"
             "s=socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])\n"
             "s.sendall(b'{\"cmd\":\"version\"}\\n')\n"
             "print(repr(s.recv(4096)))\n")
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-c", probe,
                        agent.socket], capture_output=True, text=True, timeout=30)
    assert p.stdout.strip() in ("b''", ""), p.stdout + p.stderr  # closed without a reply
    assert ControlClient(agent.socket).call("version")["ok"]  # its own user still gets in


def test_a_client_that_never_reads_cannot_grow_the_agent(agent):
    """Requests sent without reading replies: the agent stops reading past 4 MiB of queued
    replies instead of buffering without bound."""
    agent.start()
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(agent.socket)
    s.setblocking(False)
    line = b'{"cmd":"facts"}\n'
    sent = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sent < 64 << 20:
        try:
            sent += s.send(line * 4096)
        except BlockingIOError:
            time.sleep(0.05)
    rss_kib = int([l for l in open("/proc/%d/status" % agent.proc.pid) if l.startswith("VmRSS:")][0].split()[1])
    assert rss_kib < 200 * 1024, rss_kib
    assert sent < 64 << 20, "the agent kept reading requests it could not answer"
    s.close()
    assert ControlClient(agent.socket).call("version")["ok"]


def test_the_agent_installs_only_what_its_publisher_signed(agent, published, tmp_path, host_bin):
    """Issue #16's attack: whoever writes the manifest share or reaches the control socket
    decides what gets installed. With a publisher key configured, the agent refuses a
    manifest without a record, with a record of another key, or with a genuine record of
    another package; the record beside the manifest (MANIFEST.sig) is found on its own."""
    src, data, manifest = published
    pd = os.path.join(host_bin, "pd")
    key = tmp_path / "publisher.key"
    public = subprocess.run([pd, "publisher-key", "--out", str(key)], capture_output=True, text=True,
                            check=True).stdout.strip()
    del agent.config["settings"]["trust.allow_unsigned"]
    agent.config["settings"]["trust.publisher_keys"] = public
    agent.start()
    out = tmp_path / "out.bin"

    r = agent.call("download", manifest=manifest, origin=str(src), dest=str(out))
    assert not r["ok"] and "has no publication record" in r["error"], r

    # A record signed with the attacker's own key.
    evil_key = tmp_path / "evil.key"
    subprocess.run([pd, "publisher-key", "--out", str(evil_key)], capture_output=True, check=True)
    signed = tmp_path / "signed"
    signed.mkdir()
    subprocess.run([pd, "publish", str(src), "--manifest", str(signed / "Setup.pdm"), "--origin", str(src),
                    "--sign", str(evil_key), "--cache", str(tmp_path / "pub")], capture_output=True, check=True)
    r = agent.call("download", manifest=str(signed / "Setup.pdm"), dest=str(out))
    assert not r["ok"] and "untrusted publisher key" in r["error"], r

    # The genuine record of this package, offered for another package.
    subprocess.run([pd, "publish", str(src), "--manifest", str(signed / "Setup.pdm"), "--origin", str(src),
                    "--sign", str(key), "--cache", str(tmp_path / "pub")], capture_output=True, check=True)
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(100000))
    peerdist.Manifest.hash_file(str(other), "Setup.bin").write(str(tmp_path / "other.pdm"))
    r = agent.call("download", manifest=str(tmp_path / "other.pdm"), origin=str(other), dest=str(out),
                   publication=str(signed / "Setup.pdm.sig"))
    assert not r["ok"] and "its content id differs" in r["error"], r
    assert agent.ok("cache")["cache"] == [] and not out.exists()

    # The signed package: the record beside the manifest, and the origin it names.
    r = agent.ok("download", manifest=str(signed / "Setup.pdm"), dest=str(out))
    assert agent.wait_job(r["job"])["state"] == "completed"
    assert out.read_bytes() == data
