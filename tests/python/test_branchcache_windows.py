"""The branchcache backend's BranchCache wire mode, server side, as a Windows peer sees it:
the independent client of branchcache_client.py (written from [MS-PCCRC], [MS-PCCRD] and
[MS-PCCRR]) probes an agent for a content's segments, by the IDs its Content Information
gives, and fetches and decrypts blocks from it; then attacks it."""
import os
import pathlib
import socket
import struct
import time
import http.client

import pytest

import peerdist
import branchcache_client as bc

PASSPHRASE = b"the origin's server secret"


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def agent(tmp_path, plugin_dir):
    """A session with the branchcache backend answering Windows peers, holding a content of
    two segments whose Content Information is recorded; and the client's view of it."""
    probe_port = free_port(socket.SOCK_DGRAM)
    s = peerdist.Session(tmp_path / "cache")
    s.set_setting("trust.allow_unsigned", "1")
    s.set_setting("plugin.branchcache.windows_peers", "1")
    s.set_setting("plugin.branchcache.pccrd_port", str(probe_port))
    s.set_setting("plugin.branchcache.pccrr_port", "0")
    s.set_setting("plugin.branchcache.max_probe_answers_per_source", "100")
    s.load_plugin(pathlib.Path(plugin_dir) / ("peerdist-branchcache" + (".dll" if os.name == "nt" else ".so")))
    data = os.urandom(32 * 1024 * 1024 + 100000)
    src = tmp_path / "package.bin"
    src.write_bytes(data)
    m = s.publish(src, add_to_cache=True)
    info = peerdist.content_info(str(src), 1, PASSPHRASE)
    s.set_branchcache_info(m.id, info)
    segments = bc.content_information_v1(info)
    try:
        yield {"session": s, "data": data, "segments": segments, "probe_to": ("127.0.0.1", probe_port), "info": info,
               "content": m.id, "src": src}
    finally:
        s.close()


def test_a_windows_client_discovers_the_segments_and_fetches_verified_blocks(agent):
    segments, data = agent["segments"], agent["data"]
    assert [len(s["block_hashes"]) for s in segments] == [512, 2]
    matches = bc.discover([s["id"] for s in segments], timeout=2.0, to=agent["probe_to"])
    assert len(matches) == 1, matches
    m = matches[0]
    assert m["segments"] == [s["id"] for s in segments] and m["block_counts"] == [512, 2]
    assert m["endpoint"].startswith("urn:uuid:") and m["message_number"] >= 1
    [address] = m["addresses"]
    assert address.startswith("127.0.0.1:")
    # Blocks as a Windows peer fetches them: one GETBLKS each, AES-128 under the segment
    # secret, checked against the block hashes of the Content Information.
    import hashlib
    for seg_index, block in ((0, 0), (0, 511), (1, 0), (1, 1)):
        seg = segments[seg_index]
        start = seg["offset"] + block * 65536
        size = min(65536, len(data) - start)
        got = bc.fetch_block(address, seg["id"], block, seg["secret"], size)
        assert got == data[start:start + size], (seg_index, block)
        assert hashlib.sha256(got).digest() == seg["block_hashes"][block]
    # The other ciphers a client may ask for, and the block list.
    for algo in (bc.AES_192, bc.AES_256):
        assert bc.fetch_block(address, segments[1]["id"], 1, segments[1]["secret"], 100000 - 65536, algo) == data[-(100000 - 65536):]
    host, port = address.split(":")
    reply = post(host, int(port), bc.getblklist(segments[0]["id"], [(0, 512)]))
    assert reply[0] == 200 and bc.parse(reply[1], True)["ranges"] == [(0, 512)]
    assert bc.parse(post(host, int(port), bc.nego_req((1, 0), (2, 0)))[1], True)["max"] == (1, 0)


def post(host, port, body, path=bc.RETRIEVAL_PATH, method="POST"):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_what_the_agent_does_not_hold_or_cannot_read_is_answered_as_the_spec_says(agent):
    segments = agent["segments"]
    address = bc.discover([segments[0]["id"]], timeout=2.0, to=agent["probe_to"])[0]["addresses"][0]
    host, port = address.split(":")
    port = int(port)
    stranger = os.urandom(32)
    # A segment nobody here holds: no ProbeMatch at all (3.2.4.1), an empty block, an empty list.
    assert bc.discover([stranger], timeout=0.5, to=agent["probe_to"]) == []
    assert bc.fetch_block(address, stranger, 0, bytes(32), 65536) is None
    assert bc.parse(post(host, port, bc.getblklist(stranger, [(0, 4)]))[1], True)["ranges"] == []
    # Past the segment's last block: empty.
    assert bc.fetch_block(address, segments[1]["id"], 7, segments[1]["secret"], 65536) is None
    # A 2.0 request is answered with the versions spoken (3.2.5).
    v2 = bytearray(bc.getblks(segments[0]["id"], 0))
    v2[0:4] = bc.version(2, 0)
    status, body = post(host, port, bytes(v2))
    assert status == 200 and bc.parse(body, True)["type"] == bc.NEGO_RESP
    # Not this protocol: refused at the HTTP level.
    assert post(host, port, b"\0" * 40)[0] == 400
    assert post(host, port, bc.nego_req(), path="/other/")[0] == 404
    assert post(host, port, None, method="GET")[0] == 405
    # A content whose Content Information is not recorded has no segment IDs to answer for.
    other = agent["src"].parent / "other.bin"
    other.write_bytes(os.urandom(200000))
    agent["session"].publish(other, add_to_cache=True)
    other_segments = bc.content_information_v1(peerdist.content_info(str(other), 1, PASSPHRASE))
    assert bc.discover([other_segments[0]["id"]], timeout=0.5, to=agent["probe_to"]) == []


def test_an_attacker_cannot_flood_or_stall_the_retrieval_server(agent):
    segments = agent["segments"]
    address = bc.discover([segments[0]["id"]], timeout=2.0, to=agent["probe_to"])[0]["addresses"][0]
    host, port = address.split(":")
    port = int(port)
    # Silent connections up to the per-source cap (8), then one more: refused at once, while
    # a request already in flight elsewhere still gets its block.
    silent = [socket.create_connection((host, port)) for _ in range(8)]
    try:
        extra = socket.create_connection((host, port))
        extra.settimeout(5)
        assert extra.recv(1) == b""  # closed by the server
        extra.close()
    finally:
        for c in silent:
            c.close()
    time.sleep(0.2)
    # A body over the bound: refused (413, or the connection reset while the client still
    # sends what the server will not read), the server unharmed.
    try:
        status, _ = post(host, port, b"\0" * (200 * 1024))
        assert status == 413
    except ConnectionResetError:
        pass
    # Probes: a flood from one address gets its own share of answers only.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    for i in range(300):
        s.sendto(bc.probe([segments[0]["id"]], "urn:uuid:%d" % i).encode(), agent["probe_to"])
    answers = 0
    try:
        while True:
            s.recvfrom(65536)
            answers += 1
    except socket.timeout:
        pass
    s.close()
    assert 1 <= answers <= 100 + 50, answers  # max_probe_answers_per_source (100 here) a second
    # And the server still serves.
    seg = segments[1]
    assert bc.fetch_block(address, seg["id"], 0, seg["secret"], 65536) == agent["data"][seg["offset"]:seg["offset"] + 65536]


def wire_mode_session(path, plugin_dir, probe_to=None):
    """A session in BranchCache wire mode on loopback ports of its own; probes go to
    `probe_to` (the other agent's Probe port: loopback has no multicast route)."""
    s = peerdist.Session(path)
    s.set_setting("trust.allow_unsigned", "1")
    s.set_setting("plugin.branchcache.windows_peers", "1")
    port = free_port(socket.SOCK_DGRAM)
    s.set_setting("plugin.branchcache.pccrd_port", str(port))
    s.set_setting("plugin.branchcache.pccrr_port", "0")
    if probe_to:
        s.set_setting("plugin.branchcache.pccrd_probe_to", "%s:%d" % probe_to)
    s.load_plugin(pathlib.Path(plugin_dir) / ("peerdist-branchcache" + (".dll" if os.name == "nt" else ".so")))
    return s, ("127.0.0.1", port)


def test_an_agent_fetches_a_content_from_another_by_pccrd_and_pccrr_alone(agent, tmp_path, plugin_dir):
    """No fleet key, no origin: the receiving agent knows the content (its manifest) and its
    Content Information, probes for the segments, and fetches every block with GETBLKS,
    each verified by the core before it is written."""
    with wire_mode_session(tmp_path / "receiver", plugin_dir, agent["probe_to"])[0] as b:
        b.import_manifest(agent["session"].export_manifest(agent["content"]))
        b.set_branchcache_info(agent["content"], agent["info"])
        st = b.start(agent["content"], destination=tmp_path / "out.bin").wait(timeout=120)
        assert st["state"] == "completed", st
        assert st["bytes_by_source"]["lan"] == len(agent["data"]), st["bytes_by_source"]
        assert st["bytes_by_source"]["origin"] == 0
        assert (tmp_path / "out.bin").read_bytes() == agent["data"]


def test_blocks_a_peer_bends_are_refused_and_the_next_source_takes_over(agent, tmp_path, plugin_dir):
    """An attacker on the LAN answers the Probe faster than anyone, with its own retrieval
    server sending wrong blocks (encrypted under the right secret — it could have the
    Content Information). The core's hashes refuse them; the job ends from the origin,
    with nothing unverified written."""
    import threading
    import http.server
    segments, data = agent["segments"], agent["data"]

    class Liar(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = bc.parse(body, False)
            if req["type"] == bc.NEGO_REQ:  # it speaks the protocol, and holds everything
                reply = bc.nego_resp()
            elif req["type"] == bc.GETBLKLIST:
                reply = bc.blklist(req["segment"], req["ranges"])
            else:
                seg = next(s for s in segments if s["id"] == req["segment"])
                index = req["ranges"][0][0]
                iv = bc.random_iv()
                size = min(65536, seg["offset"] + seg["length"] - (seg["offset"] + index * 65536))
                reply = bc.blk(seg["id"], index, 0, bc.encrypt(bc.AES_128, seg["secret"], iv, os.urandom(size)), iv)
            self.send_response(200)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    liar = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=liar.serve_forever, daemon=True).start()
    probes = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probes.bind(("127.0.0.1", 0))

    def answer():
        while True:
            try:
                datagram, asker = probes.recvfrom(65536)
            except OSError:
                return
            p = bc.parse_probe(datagram)
            match = bc.probe_match(p["message_id"], [s["id"] for s in segments], [len(s["block_hashes"]) for s in segments],
                                   ["127.0.0.1:%d" % liar.server_address[1]])
            probes.sendto(match.encode(), asker)

    threading.Thread(target=answer, daemon=True).start()
    try:
        with wire_mode_session(tmp_path / "receiver", plugin_dir, probes.getsockname())[0] as b:
            b.load_plugin(pathlib.Path(plugin_dir) / ("peerdist-origin" + (".dll" if os.name == "nt" else ".so")))
            b.import_manifest(agent["session"].export_manifest(agent["content"]), origin=str(agent["src"]))
            b.set_branchcache_info(agent["content"], agent["info"])
            events = []
            st = b.start(agent["content"], destination=tmp_path / "out.bin").wait(timeout=120, on_event=events.append)
            assert st["state"] == "completed", st
            assert (tmp_path / "out.bin").read_bytes() == data
            assert st["bytes_by_source"]["lan"] == 0 and st["bytes_by_source"]["origin"] == len(data)
            assert any(e["type"] == "block_rejected" for e in events) or st.get("blocks_rejected", 0) > 0, events[:5]
    finally:
        probes.close()
        liar.shutdown()
