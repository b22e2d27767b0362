"""BranchCache's origin side ([MS-PCCRTP]): `pd serve` answers PeerDist requests with Content
Information and everything else with the bytes; the origin backend asks such an origin for
it, so a download starts from a URL alone and its blocks come from BranchCache peers first.
The requests here are written from the specification (section numbers in the comments), with
http.client, independently of the C++."""
import hashlib
import http.client
import http.server
import os
import pathlib
import socket
import subprocess
import threading
import time

import pytest

import peerdist
import branchcache_client as bc

PASSPHRASE = "5365637265742073656564"  # hex, as pd serve takes it
PEERDIST = {"Accept-Encoding": "gzip, peerdist", "X-P2P-PeerDist": "Version=1.0"}  # 3.1.4


def lib(name):
    return "peerdist-%s%s" % (name, ".dll" if os.name == "nt" else ".so")


@pytest.fixture
def site(tmp_path, host_bin):
    """`pd serve` on a directory holding a two-segment package, a small file and a secret
    outside the directory; yields what the tests need to talk to it."""
    root = tmp_path / "www"
    (root / "pkgs").mkdir(parents=True)
    data = os.urandom((32 << 20) + 300000)
    (root / "pkgs" / "package.bin").write_bytes(data)
    (root / "small.txt").write_bytes(b"small")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.txt", root / "link-out")
    p = subprocess.Popen([os.path.join(host_bin, "pd"), "serve", str(root), "--listen", "127.0.0.1:0",
                          "--server-passphrase", PASSPHRASE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("listening on "), line + p.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        yield {"port": port, "data": data, "root": root, "url": "http://127.0.0.1:%d/pkgs/package.bin" % port,
               "host_bin": host_bin}
    finally:
        p.terminate()
        p.wait(timeout=10)


def get(port, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def expected_info(site, version):
    hexed = subprocess.run([os.path.join(site["host_bin"], "pd"), "content-info", str(site["root"] / "pkgs" / "package.bin"),
                            "--version", str(version), "--server-passphrase", PASSPHRASE],
                           check=True, capture_output=True, text=True, timeout=120).stdout
    return bytes.fromhex(hexed.strip())


def test_pd_serve_answers_peerdist_requests_as_the_specification_says(site):
    port, data = site["port"], site["data"]
    # 3.2.5.1: a PeerDist request gets Content Information V1, Content-Encoding peerdist, and
    # X-P2P-PeerDist with the encoding version and the content's own length.
    status, h, body = get(port, "/pkgs/package.bin", PEERDIST)
    assert status == 200 and h["content-encoding"] == "peerdist"
    assert h["x-p2p-peerdist"] == "Version=1.0, ContentLength=%d" % len(data)
    assert body == expected_info(site, 1)
    segments = bc.content_information_v1(body)
    assert [s["length"] for s in segments] == [32 << 20, 300000]
    assert segments[1]["block_hashes"][0] == hashlib.sha256(data[32 << 20:(32 << 20) + 65536]).digest()
    # 1.1 with X-P2P-PeerDistEx: the highest Content Information version both speak.
    v11 = {"Accept-Encoding": "peerdist", "X-P2P-PeerDist": "Version=1.1",
           "X-P2P-PeerDistEx": "MinContentInformation=1.0, MaxContentInformation=2.0"}
    status, h, body = get(port, "/pkgs/package.bin", v11)
    assert status == 200 and h["x-p2p-peerdist"].startswith("Version=1.1") and body == expected_info(site, 2)
    # Section 4's example request, verbatim: a 1.1 client that takes Content Information 1.0
    # only; the example's answer names Version=1.1 and the identity length.
    example = {"Accept": "*/*", "Accept-Language": "en-US", "Accept-Encoding": "gzip, deflate, peerdist",
               "X-P2P-PeerDist": "Version=1.1", "X-P2P-PeerDistEx": "MinContentInformation=1.0, MaxContentInformation=1.0",
               "User-Agent": "Mozilla/4.0"}
    status, h, body = get(port, "/pkgs/package.bin", example)
    assert status == 200 and h["content-encoding"] == "peerdist" and body == expected_info(site, 1)
    assert h["x-p2p-peerdist"] == "Version=1.1, ContentLength=%d" % len(data) and h["content-length"] == str(len(body))
    # No version both speak, peerdist not accepted (q=0), a range, a small file: the bytes.
    v11["X-P2P-PeerDistEx"] = "MinContentInformation=3.0, MaxContentInformation=4.0"
    for headers in (v11, {"Accept-Encoding": "peerdist;q=0", "X-P2P-PeerDist": "Version=1.0"},
                    {"X-P2P-PeerDist": "Version=1.0"}, {"Accept-Encoding": "peerdist"}):
        status, h, body = get(port, "/pkgs/package.bin", headers)
        assert status == 200 and "content-encoding" not in h and body == data, headers
    status, h, body = get(port, "/pkgs/package.bin", dict(PEERDIST, Range="bytes=100-199"))
    assert status == 206 and body == data[100:200] and h["content-range"] == "bytes 100-199/%d" % len(data)
    assert get(port, "/small.txt", PEERDIST)[2] == b"small"
    # Ranges as RFC 9110 has them.
    assert get(port, "/pkgs/package.bin", {"Range": "bytes=-10"})[2] == data[-10:]
    assert get(port, "/pkgs/package.bin", {"Range": "bytes=%d-" % (len(data) - 5)})[2] == data[-5:]
    status, h, _ = get(port, "/pkgs/package.bin", {"Range": "bytes=%d-" % len(data)})
    assert status == 416 and h["content-range"] == "bytes */%d" % len(data)
    status, h, body = get(port, "/pkgs/package.bin", method="HEAD")
    assert status == 200 and h["content-length"] == str(len(data)) and body == b""


def test_pd_serve_refuses_what_would_leave_its_directory_or_its_bounds(site):
    port = site["port"]
    for path in ("/../secret.txt", "/pkgs/%2e%2e/%2e%2e/secret.txt", "/link-out", "/pkgs", "/pkgs/..%5c..%5csecret.txt",
                 "/nothing", "/%00", "/pkgs/package.bin%"):
        status, _, body = get(port, path)
        assert status == 404 and b"secret" not in body, path
    assert get(port, "/small.txt", method="POST")[0] == 405
    assert get(port, "/small.txt", {"X-Big": "a" * 20000})[0] == 431
    # A raw request with a body (GET carries none) is refused, and the server still serves.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        assert s.recv(100).startswith(b"HTTP/1.1 413")
    assert get(port, "/small.txt")[2] == b"small"


def wire_session(path, plugin_dir, probe_port, probe_to=None):
    s = peerdist.Session(path)
    s.set_setting("trust.allow_unsigned", "1")  # a URL alone carries no publisher's signature
    s.set_setting("plugin.branchcache.windows_peers", "1")
    s.set_setting("plugin.branchcache.pccrd_port", str(probe_port))
    s.set_setting("plugin.branchcache.pccrr_port", "0")
    if probe_to:
        s.set_setting("plugin.branchcache.pccrd_probe_to", "127.0.0.1:%d" % probe_to)
    s.load_plugin(pathlib.Path(plugin_dir) / lib("branchcache"))
    s.load_plugin(pathlib.Path(plugin_dir) / lib("origin"))
    return s


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_download_starts_from_a_url_alone_and_the_next_takes_it_from_a_branchcache_peer(site, tmp_path, plugin_dir):
    data, url = site["data"], site["url"]
    info = expected_info(site, 1)
    first_port = free_udp_port()
    with wire_session(tmp_path / "first", plugin_dir, first_port) as a:
        content = a.import_from_origin(url)
        m = a.export_manifest(content)
        assert m.name == "package.bin" and m.size == len(data)
        st = a.start(content, destination=tmp_path / "a.bin").wait(timeout=120)
        assert st["state"] == "completed" and st["bytes_by_source"]["origin"] == len(data), st
        assert (tmp_path / "a.bin").read_bytes() == data
        # The first device now answers Windows peers for the server's segments: the
        # independent client finds it by the IDs of the Content Information the server sent.
        segments = bc.content_information_v1(info)
        [match] = bc.discover([s["id"] for s in segments], timeout=2.0, to=("127.0.0.1", first_port))
        assert match["block_counts"] == [512, 5]
        # The second starts from the URL alone too, and takes every block from the first.
        with wire_session(tmp_path / "second", plugin_dir, free_udp_port(), probe_to=first_port) as b:
            assert b.import_from_origin(url, name="renamed.bin") == content  # the name is not in the id
            st = b.start(content, destination=tmp_path / "b.bin").wait(timeout=120)
            assert st["state"] == "completed", st
            assert st["bytes_by_source"]["lan"] == len(data) and st["bytes_by_source"]["origin"] == 0, st["bytes_by_source"]
            assert (tmp_path / "b.bin").read_bytes() == data


def test_the_origin_backend_records_the_content_information_of_a_published_content(site, tmp_path, plugin_dir):
    """A content imported from its manifest: the origin backend asks the PeerDist origin for
    the Content Information as it opens, and the device answers for its segments once done."""
    src = site["root"] / "pkgs" / "package.bin"
    port = free_udp_port()
    with wire_session(tmp_path / "c", plugin_dir, port) as s:
        s.set_setting("plugin.origin.peerdist", "1")  # opt-in: the origin says PeerDist
        m = s.publish(str(src))
        s.import_manifest(m, site["url"])
        st = s.start(m.id).wait(timeout=120)
        assert st["state"] == "completed", st
        segments = bc.content_information_v1(expected_info(site, 1))
        [match] = bc.discover([s_["id"] for s_ in segments], timeout=2.0, to=("127.0.0.1", port))
        assert match["block_counts"] == [512, 5]


class Liar(http.server.BaseHTTPRequestHandler):
    """An origin an attacker controls: says PeerDist and sends what `answer` holds."""
    answer = b""
    length = 0

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Encoding", "peerdist")
        self.send_header("X-P2P-PeerDist", "Version=1.0, ContentLength=%d" % self.length)
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args):
        pass


def test_an_origin_that_lies_gets_a_clear_error_and_nothing_installed(site, tmp_path, plugin_dir):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/x.bin" % server.server_address[1]
    try:
        with wire_session(tmp_path / "s", plugin_dir, free_udp_port()) as s:
            # Not Content Information at all; a range of a content; a segment whose HoD is
            # not its blocks'.
            Liar.answer = b"\x00\x01" + os.urandom(200)
            with pytest.raises(peerdist.errors.InvalidError, match="Content Information"):
                s.import_from_origin(url)
            good = bytearray(expected_info(site, 1))
            ranged = bytearray(good)
            ranged[6:10] = (100).to_bytes(4, "little")  # dwOffsetInFirstSegment
            Liar.answer = bytes(ranged)
            with pytest.raises(peerdist.errors.InvalidError, match="range"):
                s.import_from_origin(url)
            bent = bytearray(good)
            bent[18 + 16] ^= 1  # the first segment's HoD
            Liar.answer = bytes(bent)
            with pytest.raises(peerdist.errors.IntegrityError, match="HoD"):
                s.import_from_origin(url)
            # Content Information of other bytes than the URL serves: the blocks fail their
            # hashes, the job fails with the reason, nothing is delivered.
            Liar.answer = bytes(good)
            content = s.import_from_origin(url)
            st = s.start(content, destination=tmp_path / "out.bin").wait(timeout=60)
            assert st["state"] == "failed", st
            assert not (tmp_path / "out.bin").exists()
            # Without trust.allow_unsigned a URL alone is refused: nobody signed it.
            s.set_setting("trust.allow_unsigned", "0")
            with pytest.raises(peerdist.errors.AuthError):
                s.import_from_origin(url)
            # An origin that does not speak PeerDist.
            with pytest.raises(peerdist.errors.NotFoundError, match="PeerDist"):
                s.import_from_origin("http://127.0.0.1:%d/small.txt" % site["port"])
    finally:
        server.shutdown()


def test_pd_get_downloads_from_a_url_alone(site, tmp_path, plugin_dir):
    import json
    pd = os.path.join(site["host_bin"], "pd")
    env = dict(os.environ, PEERDIST_PLUGIN_DIR=plugin_dir)
    args = [pd, "get", site["url"], "--cache", str(tmp_path / "cache"), "--dest", str(tmp_path / "got.bin")]
    # Nobody signed a URL: refused (exit 4, the trust table) unless the user allows it.
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 4 and "trust.allow_unsigned" in r.stderr, r.stderr
    assert not (tmp_path / "got.bin").exists()
    r = subprocess.run(args + ["--allow-unsigned", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["state"] == "completed" and out["bytes_by_source"]["origin"] == len(site["data"])
    assert (tmp_path / "got.bin").read_bytes() == site["data"]
    # --origin makes no sense with a URL; an origin without PeerDist is "not found" (3).
    r = subprocess.run(args + ["--origin", "http://elsewhere/x"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2, r.stderr
    r = subprocess.run([pd, "get", "http://127.0.0.1:%d/small.txt" % site["port"], "--cache", str(tmp_path / "c2"),
                        "--allow-unsigned"], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 3 and "PeerDist" in r.stderr, r.stderr
