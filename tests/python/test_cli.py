"""The pd CLI and the C example, built against the installed SDK (install_and_build_host)."""
import json
import os
import subprocess

import pytest

HOST = os.environ.get("PD_HOST_BIN", "")
PD = os.path.join(HOST, "pd")
EXAMPLE = os.path.join(HOST, "download-example")

if not HOST:
    pytest.fail("PD_HOST_BIN is not set: run through ctest", pytrace=False)


def run(*args, check=True, env_extra=None, **kw):
    env = dict(os.environ)
    env.update(env_extra or {})
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=env, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout, p.stderr))
    return p


def test_publish_get_and_cache(tmp_path, plugin_dir):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "setup.exe"
    src.write_bytes(data)
    cache = tmp_path / "cache"
    public = run(PD, "publisher-key", "--out", str(tmp_path / "publisher.key")).stdout.strip()
    p = run(PD, "publish", str(src), "--cache", str(tmp_path / "pubcache"), "--sign", str(tmp_path / "publisher.key"))
    cid = p.stdout.strip()
    assert len(cid) == 64
    assert (tmp_path / "setup.exe.pdm").exists() and (tmp_path / "setup.exe.pdm.sig").exists()
    dest = tmp_path / "got.exe"
    get = [PD, "get", str(tmp_path / "setup.exe.pdm"), "--cache", str(cache), "--plugins", plugin_dir,
           "--dest", str(dest), "--origin", "file://" + str(src)]
    p = run(*get, check=False)  # the record is found beside the manifest, but no key is trusted
    assert p.returncode == 4 and "no publisher key is trusted" in p.stderr, p.stderr  # refused
    p = run(*get, "--publisher-key", public)
    assert dest.read_bytes() == data
    assert "summary:" in p.stdout and "origin 3.0 MiB" in p.stdout
    assert "100.0%" in p.stderr  # the progress bar reached the end
    ls = run(PD, "cache", "ls", "--cache", str(cache)).stdout
    assert cid in ls and "complete" in ls and "setup.exe" in ls
    run(PD, "cache", "pin", cid[:7], "--cache", str(cache))  # a unique prefix, as git takes them
    assert "(pinned)" in run(PD, "cache", "ls", "--cache", str(cache)).stdout
    listed = json.loads(run(PD, "cache", "ls", "--cache", str(cache), "--json").stdout)
    assert listed == [{"content": cid, "name": "setup.exe", "state": "complete", "size": len(data),
                       "bytes_verified": len(data), "pinned": True}]
    assert run(PD, "cache", "rm", cid[:3], "--cache", str(cache), check=False).returncode == 2  # too short to be one
    other = "0" * 8 if not cid.startswith("0") else "f" * 8
    p = run(PD, "cache", "rm", other, "--cache", str(cache), check=False)
    assert p.returncode == 3 and "no content " + other in p.stderr
    run(PD, "cache", "rm", cid.upper(), "--cache", str(cache))
    assert cid not in run(PD, "cache", "ls", "--cache", str(cache)).stdout


def test_an_sdk_installed_anywhere_finds_its_own_plugins(tmp_path):
    """pd here runs against the SDK installed under the build's stage/ prefix: with no
    --plugins and no PEERDIST_PLUGIN_DIR it loads the plugins installed beside that library;
    PEERDIST_PLUGIN_DIR still overrides (and is named when it is wrong)."""
    src = tmp_path / "pkg.bin"
    src.write_bytes(os.urandom(300000))
    run(PD, "publish", str(src), "--cache", str(tmp_path / "pc"))
    env = {k: v for k, v in os.environ.items() if k != "PEERDIST_PLUGIN_DIR"}
    get = [PD, "get", str(tmp_path / "pkg.bin.pdm"), "--cache", str(tmp_path / "c"), "--allow-unsigned",
           "--dest", str(tmp_path / "out"), "--origin", str(src), "--json"]
    p = subprocess.run(get, capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["bytes_by_source"]["origin"] == 300000
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    p = subprocess.run(get, capture_output=True, text=True, timeout=60,
                       env=dict(env, PEERDIST_PLUGIN_DIR=str(tmp_path / "nowhere")))
    assert p.returncode == 3 and "nowhere" in p.stderr, p.stderr


def test_get_reports_tampering(tmp_path, plugin_dir):
    src = tmp_path / "pkg.bin"
    src.write_bytes(os.urandom(1 << 20))
    run(PD, "publish", str(src), "--cache", str(tmp_path / "pc"))
    raw = bytearray(src.read_bytes())
    raw[5 * 65536] ^= 0x55
    src.write_bytes(bytes(raw))
    p = run(PD, "get", str(tmp_path / "pkg.bin.pdm"), "--cache", str(tmp_path / "c"), "--plugins", plugin_dir, "--allow-unsigned",
            "--dest", str(tmp_path / "out"), "--origin", str(src), check=False)
    assert p.returncode == 4  # refused: integrity
    assert "block 5" in p.stderr and "verification" in p.stderr
    assert not (tmp_path / "out").exists()


def test_get_without_an_origin_says_so(tmp_path, plugin_dir):
    src = tmp_path / "pkg.bin"
    src.write_bytes(os.urandom(100000))
    run(PD, "publish", str(src), "--cache", str(tmp_path / "pc"))
    p = run(PD, "get", str(tmp_path / "pkg.bin.pdm"), "--cache", str(tmp_path / "c"), "--plugins", plugin_dir, "--allow-unsigned",
            "--dest", str(tmp_path / "out"), check=False)
    assert p.returncode == 1 and "no origin recorded" in p.stderr


def test_get_without_dest_writes_nothing_into_the_current_directory(tmp_path, plugin_dir):
    src = tmp_path / "pkg.bin"
    src.write_bytes(os.urandom(200000))
    run(PD, "publish", str(src), "--cache", str(tmp_path / "pc"))
    work = tmp_path / "cwd"
    work.mkdir()
    p = subprocess.run([PD, "get", str(tmp_path / "pkg.bin.pdm"), "--cache", str(tmp_path / "c"), "--plugins", plugin_dir, "--allow-unsigned",
                        "--origin", str(src)], capture_output=True, text=True, cwd=work, timeout=60)
    assert p.returncode == 0, p.stderr
    assert list(work.iterdir()) == []
    cached = p.stdout.split("in the cache at ", 1)[1].split("\n", 1)[0]
    assert open(cached, "rb").read() == src.read_bytes()


def test_a_hidden_or_reserved_name_is_refused(tmp_path):
    for name in (".bashrc", "CON", "nul.txt", "setup.exe.", "a:b"):
        f = tmp_path / "f"
        f.write_bytes(b"x" * 1000)
        p = run(PD, "publish", str(f), "--name", name, "--cache", str(tmp_path / "pc"), check=False)
        assert p.returncode != 0 and "invalid content name" in p.stderr, (name, p.stderr)


def test_delivery_never_follows_a_planted_link(tmp_path, plugin_dir):
    """An attacker who can write the destination directory plants the old fixed temporary
    name as a link to a victim file; delivery uses an unpredictable name, so the victim
    is untouched."""
    src = tmp_path / "pkg.bin"
    src.write_bytes(os.urandom(300000))
    run(PD, "publish", str(src), "--cache", str(tmp_path / "pc"))
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out.bin"
    os.symlink(victim, str(out) + ".pdpart")
    run(PD, "get", str(tmp_path / "pkg.bin.pdm"), "--cache", str(tmp_path / "c"), "--plugins", plugin_dir, "--allow-unsigned",
        "--dest", str(out), "--origin", str(src))
    assert out.read_bytes() == src.read_bytes()
    assert victim.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir() if ".pdpart." in p.name] == []


def test_get_rejects_a_corrupt_manifest(tmp_path, plugin_dir):
    (tmp_path / "bad.pdm").write_bytes(b"PDMF\x01\x00\x01\x00\x00\x00")
    p = run(PD, "get", str(tmp_path / "bad.pdm"), "--cache", str(tmp_path / "c"), "--plugins", plugin_dir, "--allow-unsigned", check=False)
    assert p.returncode == 1 and "truncated" in p.stderr


VECTOR_PASS = "2a3d73eb435e9f2b8a344267e7467a3c7385c6e055e2b4d30dfec7c38b0ed72c"


def test_content_info(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(os.urandom(99710))
    v1 = run(PD, "content-info", str(f), "--version", "1", "--server-passphrase", VECTOR_PASS).stdout.strip()
    assert len(v1) == 166 * 2 and v1.startswith("00010c800000")
    v2 = run(PD, "content-info", str(f), "--version", "2", "--server-passphrase", VECTOR_PASS).stdout.strip()
    assert v2.startswith("000204") and len(v2) == (31 + 5 + 68) * 2
    bad = run(PD, "content-info", str(f), "--version", "1", "--server-passphrase", "zz", check=False)
    assert bad.returncode == 2


def test_version_agrees():
    assert "pd 0.4.0 (headers 0.4.0)" in run(PD, "version").stdout


def test_c_example_downloads_against_the_installed_sdk(tmp_path, plugin_dir):
    data = os.urandom(700000)
    (tmp_path / "a.bin").write_bytes(data)
    public = run(PD, "publisher-key", "--out", str(tmp_path / "publisher.key")).stdout.strip()
    run(PD, "publish", str(tmp_path / "a.bin"), "--cache", str(tmp_path / "pc"), "--sign", str(tmp_path / "publisher.key"))
    p = run(EXAMPLE, str(tmp_path / "cache"), plugin_dir, str(tmp_path / "a.bin.pdm"), str(tmp_path / "a.bin"),
            str(tmp_path / "out.bin"), public)
    assert "delivered to" in p.stdout
    assert (tmp_path / "out.bin").read_bytes() == data
