"""The three command lines as a careless or hostile user drives them: every command's help on
stdout with status 0, and every wrong command line, bad value and missing file answered with
one line (plus a pointer to --help) and the status docs/cli.md documents — never an uncaught
exception, an abort or a library's internal message."""
import json
import os
import subprocess

import pytest

HOST = os.environ.get("PD_HOST_BIN", "")
BUILD = os.environ.get("PD_BUILD_DIR", "")
PD = os.path.join(HOST, "pd")
AGENT = os.path.join(HOST, "pd-agent")
COORD = os.path.join(BUILD, "coordinator", "pd-coordinator")

if not HOST or not BUILD:
    pytest.fail("PD_HOST_BIN and PD_BUILD_DIR must be set: run through ctest", pytrace=False)

USAGE, FAILED, NOT_FOUND, REFUSED, UNREACHABLE = 2, 1, 3, 4, 5
# What must never reach a user: C++ exception texts and crash signs.
INTERNALS = ("terminate called", "what()", "stoull", "stoll", "stoul", "map::at", "_M_range_check", "type_error",
             "invalid_argument", "Aborted", "core dumped", "std::")


def run(args, cwd):
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd)
    assert p.returncode >= 0, "%s died of signal %d: %s" % (args, -p.returncode, p.stderr)
    return p


def assert_clean_error(p, status, args, words=()):
    assert p.returncode == status, (args, p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, (args, p.stderr)  # the error, and for usage errors where help is
    assert not any(x in p.stderr for x in INTERNALS), (args, p.stderr)
    assert os.path.basename(args[0]) + ": " in lines[0], (args, p.stderr)
    for w in words:
        assert w in p.stderr, (args, w, p.stderr)


PD_COMMANDS = ["publisher-key", "publish", "get", "cache", "cache ls", "cache rm", "cache pin", "cache unpin",
               "content-info", "version", "admin", "status", "cancel", "pause", "resume", "facts", "call"]


@pytest.mark.parametrize("program,command", [(PD, "")] + [(PD, c) for c in PD_COMMANDS] +
                         [(AGENT, "")] + [(COORD, c) for c in ("", "init", "serve", "admin-key", "admin-key add",
                                                                 "admin-key revoke", "admin-key list", "admin")])
def test_help_is_on_stdout_with_status_0(program, command, tmp_path):
    for flag in ("--help", "-h"):
        p = run([program] + command.split() + [flag], tmp_path)
        assert p.returncode == 0 and p.stderr == "", (command, p.stderr)
        assert "Usage:" in p.stdout and (not command or command.split()[-1] in p.stdout)
    assert list(tmp_path.iterdir()) == []  # asking for help creates nothing


def test_version_everywhere(tmp_path):
    for program in (PD, AGENT, COORD):
        p = run([program, "--version"], tmp_path)
        assert p.returncode == 0 and "0.4" in p.stdout and p.stderr == "", (program, p.stdout, p.stderr)


def test_bad_command_lines(tmp_path):
    f = tmp_path / "file.bin"
    f.write_bytes(b"x" * 1000)
    notkey = tmp_path / "notkey"
    notkey.write_text("this is not hex\n")
    os.chmod(notkey, 0o600)
    missing = str(tmp_path / "missing")
    cache = ["--cache", str(tmp_path / "cache")]
    cases = [
        # pd: options and commands that do not exist, with a suggestion when one is close
        ([PD], USAGE, ["subcommand is required"]),
        ([PD, "pubish", str(f)], USAGE, ["unknown command 'pubish'", "did you mean publish"]),
        ([PD, "publish", str(f), "--orign", "x", "--dset", "y"], USAGE, ["--orign", "did you mean --origin"]),
        ([PD, "get", "m.pdm", "--dset", "y"], USAGE, ["did you mean --dest"]),
        ([PD, "publish"], USAGE, ["file is required"]),
        ([PD, "publish", missing], USAGE, ["does not exist"]),
        ([PD, "publish", str(f), "--sign", missing], USAGE, ["does not exist"]),
        ([PD, "publish", str(f), "--sign", str(notkey)] + cache, FAILED, ["publisher key"]),
        ([PD, "publisher-key"], USAGE, ["--out is required"]),
        ([PD, "get"], USAGE, ["MANIFEST, a URL or --content"]),
        ([PD, "get", "m.pdm", "--content", "ab" * 32], USAGE, ["one of them"]),
        ([PD, "get", "--content", "abc", "--coordinator", "h:1", "--fleet-key", str(notkey)], USAGE, ["64 hex digits"]),
        ([PD, "get", "--content", "ab" * 32], USAGE, ["--coordinator and --fleet-key"]),
        ([PD, "get", "--content", "ab" * 32, "--coordinator", "h:1", "--fleet-key", str(notkey)], FAILED, ["--fleet-key"]),
        ([PD, "get", missing] + cache, NOT_FOUND, ["reading the manifest"]),
        ([PD, "get", str(f)] + cache, FAILED, ["reading the manifest"]),
        ([PD, "cache", "rm"], USAGE, ["id is required"]),
        ([PD, "cache", "rm", "zz"] + cache, USAGE, ["not a content id"]),
        ([PD, "cache", "rm", "abcd"] + cache, NOT_FOUND, ["no cache"]),
        ([PD, "cache", "frob"] + cache, USAGE, ["frob"]),
        ([PD, "content-info", str(f), "--version", "3", "--server-passphrase", "aa"], USAGE, ["not in {1,2}"]),
        ([PD, "content-info", str(f), "--version", "x", "--server-passphrase", "aa"], USAGE, ["--version"]),
        ([PD, "content-info", str(f), "--server-passphrase", "zz"], USAGE, ["must be hex"]),
        ([PD, "content-info", str(f), "--server-passphrase", "abc"], USAGE, ["even number"]),
        ([PD, "admin"], USAGE, ["is required"]),
        ([PD, "admin", "--coordinator", "127.0.0.1:1", "--credential", str(notkey)], USAGE, ["needs an operation"]),
        ([PD, "admin", "--coordinator", "127.0.0.1:1", "--credential", str(notkey), "health"], FAILED, ["credential"]),
        ([PD, "admin", "--coordinator", "127.0.0.1:1", "--key-file", str(notkey), "health"], USAGE, ["--credential FILE"]),
        ([PD, "status"], USAGE, ["pd --agent ADDRESS status"]),
        ([PD, "cancel", "1"], USAGE, ["--agent"]),
        ([PD, "--agent", missing, "cancel", "abc"], USAGE, ["not a whole number"]),
        ([PD, "--agent", missing, "cancel", "-1"], USAGE, []),
        ([PD, "--agent", missing, "cancel", "99999999999999999999999"], USAGE, []),
        ([PD, "--agent", missing, "status"], UNREACHABLE, ["cannot reach pd-agent"]),
        ([PD, "--agent", missing, "call", "not json"], UNREACHABLE, []),  # the agent first: it is not there
        ([PD, "--agent", missing, "publish", str(f)], USAGE, ["drop --agent"]),
        ([PD, "--agent", missing, "get", "m.pdm", "--copy"], USAGE, ["agent's own configuration"]),
        # pd-agent
        ([AGENT, "--confg", "x"], USAGE, ["did you mean --config"]),
        ([AGENT, "extra"], USAGE, ["extra"]),
        # pd-coordinator
        ([COORD], USAGE, ["subcommand is required"]),
        ([COORD, "serv"], USAGE, ["did you mean serve"]),
        ([COORD, "serve", "--db", missing], USAGE, ["--listen is required"]),
        ([COORD, "serve", "--db", missing, "--listen", "127.0.0.1:0", "--heartbeat-ms", "abc"], USAGE, ["--heartbeat-ms"]),
        ([COORD, "serve", "--db", missing, "--listen", "127.0.0.1:0", "--heartbeat-ms", "5"], USAGE, ["--heartbeat-ms"]),
        ([COORD, "serve", "--db", missing, "--listen", "127.0.0.1:0", "--bucket-bytes", "-1"], USAGE, ["--bucket-bytes"]),
        ([COORD, "serve", "--db", missing, "--listen", "127.0.0.1:0", "--wave-width", "0"], USAGE, ["--wave-width"]),
        ([COORD, "serve", "--db", missing, "--listen", "127.0.0.1:0", "--retire-absent", "5y"], USAGE, ["45s, 90m"]),
        ([COORD, "serve", "--db", missing, "--listen", "127.0.0.1:0"], NOT_FOUND, ["coordinator database"]),
        ([COORD, "admin-key", "add", "--db", missing, "--name", "a", "--out", "o", "--role", "king"], USAGE,
         ["not in {admin,viewer}"]),
        ([COORD, "admin-key", "frob", "--db", missing], USAGE, ["frob"]),
        ([COORD, "admin", "--connect", "127.0.0.1:1", "--credential", missing, "rvp"], NOT_FOUND, ["credential"]),
        ([COORD, "admin", "--connect", "127.0.0.1:1", "--credential", missing], USAGE, ["needs an operation"]),
    ]
    for args, status, words in cases:
        assert_clean_error(run(args, tmp_path), status, args, words)
    # Nothing above created a cache, a database or a credential.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin", "notkey"]


def test_read_only_commands_create_nothing(tmp_path):
    cache = tmp_path / "never"
    p = run([PD, "cache", "ls", "--cache", str(cache)], tmp_path)
    assert p.returncode == 0 and "does not exist yet" in p.stdout
    p = run([PD, "cache", "--cache", str(cache), "--json"], tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "[]"
    assert not cache.exists()


def test_an_agent_config_with_bad_values_is_refused_in_one_line(tmp_path):
    """pd-agent reports its configuration as it logs: one JSON line on stderr (docs/agent.md)."""
    p = run([AGENT, "--config", str(tmp_path / "missing.json")], tmp_path)
    assert p.returncode == USAGE and json.loads(p.stderr)["msg"].startswith("cannot read config"), p.stderr
    base = {"cache_dir": str(tmp_path / "c"), "control_socket": str(tmp_path / "s")}
    for device, word in (({"chassis": "toaster"}, "device.chassis"), ({"free_bytes": "lots"}, "device.free_bytes"),
                         ({"free_bytes": -5}, "device.free_bytes")):
        cfg = tmp_path / "agent.json"
        cfg.write_text(json.dumps(dict(base, device=device)))
        p = run([AGENT, "--config", str(cfg)], tmp_path)
        assert p.returncode == USAGE and word in p.stderr and not any(x in p.stderr for x in INTERNALS), p.stderr
    assert not (tmp_path / "c").exists()


def test_a_content_id_prefix_must_name_one_content(tmp_path):
    """Cached contents until two ids share their first 4 hex digits (the birthday bound: a few
    hundred), then each kind of prefix: ambiguous, unique, unknown, not hex."""
    import peerdist
    cache = tmp_path / "cache"
    seen = {}
    with peerdist.Session(str(cache)) as s:
        for i in range(5000):
            f = tmp_path / "f"
            f.write_bytes(b"content %d" % i)
            cid = s.publish(str(f), name="f%d" % i, add_to_cache=True).id
            if cid[:4] in seen:
                pair = (seen[cid[:4]], cid)
                break
            seen[cid[:4]] = cid
    p = run([PD, "cache", "pin", pair[0][:4], "--cache", str(cache)], tmp_path)
    assert p.returncode == USAGE and "ambiguous" in p.stderr, p.stderr
    assert pair[0] in p.stderr and pair[1] in p.stderr  # what it matches, listed
    p = run([PD, "cache", "pin", pair[0][:12], "--cache", str(cache)], tmp_path)
    assert p.returncode == 0, p.stderr
    listed = run([PD, "cache", "ls", "--cache", str(cache), "--json"], tmp_path)
    pinned = [e["content"] for e in json.loads(listed.stdout) if e["pinned"]]
    assert pinned == [pair[0]]
    assert run([PD, "cache", "pin", "g123", "--cache", str(cache)], tmp_path).returncode == USAGE


def test_coordinator_reports_as_json(tmp_path):
    p = run([COORD, "init", "--db", str(tmp_path / "c.db"), "--admin-out", str(tmp_path / "a.cred"), "--json"], tmp_path)
    assert p.returncode == 0, p.stderr
    made = json.loads(p.stdout)
    assert len(made["fleet_key"]) == 64 and len(made["coordinator_key"]) == 64 and not made["regenerated"]
    assert made["administrator"]["name"] == "admin" and made["administrator"]["credential"] == str(tmp_path / "a.cred")
    p = run([COORD, "admin-key", "add", "--db", str(tmp_path / "c.db"), "--name", "bob", "--role", "viewer",
             "--out", str(tmp_path / "b.cred"), "--json"], tmp_path)
    assert json.loads(p.stdout)["role"] == "viewer"
    listed = json.loads(run([COORD, "admin-key", "list", "--db", str(tmp_path / "c.db"), "--json"], tmp_path).stdout)
    assert [(a["name"], a["role"]) for a in listed] == [("admin", "admin"), ("bob", "viewer")]
    assert json.loads(run([COORD, "admin-key", "revoke", "--db", str(tmp_path / "c.db"), "--name", "bob", "--json"],
                          tmp_path).stdout) == {"name": "bob", "revoked": True}
