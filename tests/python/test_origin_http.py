"""The origin backend against a real nginx (and scripted servers for what nginx will not do)."""
import os
import re
import time

import pytest

import peerdist
from peerdist import errors
from netlab.servers import Nginx, ScriptedServer, free_port, make_pki, parse_range, proxy_handler

SIZE = 6 * 1024 * 1024 + 12345


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def site(tmp_path, pki):
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(SIZE)
    (root / "payload.bin").write_bytes(data)
    server = Nginx(tmp_path / "nginx", root, pki=pki).start()
    yield server, root, data
    server.stop()


@pytest.fixture
def session(tmp_path, plugin_dir):
    s = peerdist.Session(str(tmp_path / "cache"))
    s.load_plugin(plugin_dir)
    s.set_setting("trust.allow_unsigned", "1")  # these tests are about the origin, not the publisher
    # Quick failure paths: the plugin owns retries (the core reads once per attempt).
    s.set_setting("plugin.origin.retries", "2")
    s.set_setting("plugin.origin.retry_backoff_ms", "50")
    s.set_setting("plugin.origin.idle_timeout_ms", "2000")
    s.set_setting("plugin.origin.connect_timeout_ms", "2000")
    yield s
    s.close()


def fetch(session, tmp_path, data_or_manifest, origin, timeout=120):
    m = data_or_manifest
    session.import_manifest(m, origin)
    dest = tmp_path / ("out-%d.bin" % time.monotonic_ns())
    events = []
    job = session.start_job(m.id, destination=str(dest))
    st = peerdist.wait_job(session, job, timeout=timeout, on_event=events.append)
    return st, dest, events


@pytest.fixture
def manifest(site):
    _, root, _ = site
    return peerdist.Manifest.hash_file(str(root / "payload.bin"))


def test_ranged_download_over_keep_alive(session, site, manifest, tmp_path):
    server, _, data = site
    st, dest, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin"))
    assert st["state"] == "completed", st
    assert dest.read_bytes() == data
    assert st["bytes_by_source"]["origin"] == SIZE
    log = [l for l in server.access_log() if l[2] == "/payload.bin"]
    assert {l[0] for l in log} == {"206"}
    connections = {l[4] for l in log}
    assert len(log) >= 7 and len(connections) < len(log), "requests did not reuse connections"
    assert len(connections) <= 8


def test_https_with_configured_ca(session, site, manifest, pki, tmp_path):
    server, _, data = site
    session.set_setting("plugin.origin.ca_file", pki + "/ca.pem")
    st, dest, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin", "https"))
    assert st["state"] == "completed", st
    assert dest.read_bytes() == data


def test_untrusted_certificate_is_refused(session, site, manifest, pki, tmp_path):
    server, _, _ = site
    session.set_setting("plugin.origin.ca_file", pki + "/other.pem")
    st, dest, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin", "https"))
    assert st["state"] == "failed"
    assert "certificate verify failed" in st["message"], st["message"]
    assert not dest.exists()


def test_mutual_tls(session, site, manifest, pki, tmp_path):
    server, _, data = site
    session.set_setting("plugin.origin.ca_file", pki + "/ca.pem")
    st, _, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin", "mtls"))
    assert st["state"] == "failed" and "HTTP 400" in st["message"], st["message"]
    session.set_setting("plugin.origin.client_cert", pki + "/client.pem")
    session.set_setting("plugin.origin.client_key", pki + "/client.key")
    st, dest, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin", "mtls"))
    assert st["state"] == "completed", st
    assert dest.read_bytes() == data


@pytest.mark.parametrize("path, expect", [
    ("/missing.bin", "HTTP 404"),
    ("/error503.bin", "HTTP 503"),
    ("/range416.bin", "HTTP 416"),
    ("/loop", "too many redirects"),
])
def test_http_errors_are_named(session, site, manifest, tmp_path, path, expect):
    server, _, _ = site
    st, dest, _ = fetch(session, tmp_path, manifest, server.url(path))
    assert st["state"] == "failed"
    assert expect in st["message"], st["message"]
    assert not dest.exists()


def test_503_is_retried_and_416_means_changed(session, site, manifest, tmp_path):
    server, _, _ = site
    st, _, _ = fetch(session, tmp_path, manifest, server.url("/error503.bin"))
    assert "(after 3 attempts)" in st["message"], st["message"]
    st, _, _ = fetch(session, tmp_path, manifest, server.url("/range416.bin"))
    assert st["error_code"] == errors.ChangedError.code


def test_redirect_is_followed(session, site, manifest, tmp_path):
    server, _, data = site
    st, dest, _ = fetch(session, tmp_path, manifest, server.url("/moved.bin"))
    assert st["state"] == "completed", st
    assert dest.read_bytes() == data


def test_a_redirect_from_https_to_http_is_refused(session, site, manifest, pki, tmp_path):
    server, _, _ = site
    session.set_setting("plugin.origin.ca_file", pki + "/ca.pem")
    st, dest, _ = fetch(session, tmp_path, manifest, server.url("/downgrade.bin", "https"))
    assert st["state"] == "failed", st
    assert "to plain HTTP" in st["message"] and "refused" in st["message"], st["message"]
    assert not dest.exists()


def test_tampered_cdn_is_caught_and_named(session, site, manifest, tmp_path):
    server, root, data = site
    bad = bytearray(data)
    bad[3 * 65536 + 7] ^= 0xFF
    (root / "payload.bin").write_bytes(bytes(bad))
    st, dest, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin"))
    assert st["state"] == "failed"
    assert st["error_code"] == errors.IntegrityError.code
    assert "block 3 " in st["message"] and "origin" in st["message"]
    assert not dest.exists()


def test_content_changed_at_the_origin(session, site, manifest, tmp_path):
    server, root, data = site
    (root / "payload.bin").write_bytes(data + b"more")
    st, _, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin"))
    assert st["state"] == "failed"
    assert st["error_code"] == errors.ChangedError.code
    assert "origin content changed" in st["message"], st["message"]


def kill_mid_transfer(session, job, server, after_bytes):
    """SIGKILLs nginx once `after_bytes` are verified, and checks the job was not done yet."""
    deadline = time.monotonic() + 60
    while session.job_status(job)["bytes_verified"] < after_bytes:
        assert time.monotonic() < deadline
        session.wait_events(100)
    server.kill()
    assert session.job_status(job)["bytes_verified"] < SIZE, "finished before the kill: proves nothing"


def test_server_killed_mid_transfer_and_restarted_resumes(session, site, manifest, tmp_path):
    server, _, data = site
    session.set_setting("plugin.origin.max_rate_bytes", str(2 << 20))  # ~3 s in all
    session.set_setting("plugin.origin.retries", "8")
    session.set_setting("plugin.origin.retry_backoff_ms", "200")
    session.import_manifest(manifest, server.url("/payload.bin"))
    dest = tmp_path / "resumed.bin"
    job = session.start_job(manifest.id, destination=str(dest))
    kill_mid_transfer(session, job, server, SIZE // 4)
    time.sleep(1.0)
    server.start()
    st = peerdist.wait_job(session, job, timeout=120)
    assert st["state"] == "completed", st
    assert dest.read_bytes() == data


def test_stalled_server_times_out(session, manifest, tmp_path):
    stall = ScriptedServer(lambda conn, req, state: time.sleep(5) or False)
    try:
        session.set_setting("plugin.origin.idle_timeout_ms", "300")
        session.set_setting("plugin.origin.retries", "1")
        t0 = time.monotonic()
        st, _, _ = fetch(session, tmp_path, manifest, "http://127.0.0.1:%d/x" % stall.port)
        assert st["state"] == "failed"
        assert "timed out" in st["message"], st["message"]
        assert time.monotonic() - t0 < 10
    finally:
        stall.close()


def scripted_origin(data, misbehave):
    """Serves `data` with ranges; misbehave(state, first, last) may alter one response."""

    def handler(conn, request, state):
        first, last = parse_range(request)
        body = data[first:last + 1]
        content_range = "bytes %d-%d/%d" % (first, last, len(data))
        action = misbehave(state, first, last)
        if action == "truncate":
            head = "HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\nContent-Range: %s\r\n\r\n" % (
                len(body), content_range)
            conn.sendall(head.encode() + body[:len(body) // 2])
            return False
        if action == "wrong-range":
            content_range = "bytes %d-%d/%d" % (first + 1, last + 1, len(data))
        head = "HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\nContent-Range: %s\r\n\r\n" % (
            len(body), content_range)
        conn.sendall(head.encode() + body)
        return True

    return handler


def test_truncated_body_is_resumed(session, site, manifest, tmp_path):
    _, _, data = site

    def first_large_response_truncated(state, first, last):
        if last - first > 1000 and not state.get("truncated"):
            state["truncated"] = True
            return "truncate"

    srv = ScriptedServer(scripted_origin(data, first_large_response_truncated))
    try:
        st, dest, _ = fetch(session, tmp_path, manifest, "http://127.0.0.1:%d/p" % srv.port)
        assert st["state"] == "completed", st
        assert dest.read_bytes() == data
        assert srv.state["truncated"]
    finally:
        srv.close()


def test_wrong_content_range_is_refused(session, site, manifest, tmp_path):
    _, _, data = site
    srv = ScriptedServer(scripted_origin(data, lambda state, a, b: "wrong-range" if a > 0 else None))
    try:
        st, dest, _ = fetch(session, tmp_path, manifest, "http://127.0.0.1:%d/p" % srv.port)
        assert st["state"] == "failed"
        # Shifted by one byte: "wrong" for the piece asked for, "malformed" (RFC 9110: last >=
        # length) for the last piece; whichever piece fails first names it.
        assert re.search(r"(wrong|malformed) Content-Range 'bytes \d+-\d+/\d+'", st["message"]), st["message"]
        assert not dest.exists()
    finally:
        srv.close()


def test_an_origin_that_ignores_ranges_is_refused_not_downloaded_again_and_again(session, site, manifest, tmp_path):
    _, _, data = site

    def whole_file(conn, request, state):
        state["requests"] = state.get("requests", 0) + 1
        conn.sendall(("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data)).encode() + data)
        return True

    srv = ScriptedServer(whole_file)
    try:
        st, dest, _ = fetch(session, tmp_path, manifest, "http://127.0.0.1:%d/p" % srv.port)
        assert st["state"] == "failed", st
        assert "ignores HTTP Range requests" in st["message"], st["message"]
        assert not dest.exists()
    finally:
        srv.close()


def test_cdn_down_fails_over_to_file_storage(session, site, manifest, tmp_path):
    _, root, data = site
    dead = "http://127.0.0.1:%d/payload.bin" % free_port()
    st, dest, events = fetch(session, tmp_path, manifest, dead + "\n" + str(root / "payload.bin"))
    assert st["state"] == "completed", st
    assert dest.read_bytes() == data
    assert st["source_fallbacks"] >= 1
    fallbacks = [e["message"] for e in events if e["type"] == "source-fallback"]
    assert any("cannot connect" in m and str(root) in m for m in fallbacks), fallbacks


def test_cdn_dying_mid_transfer_fails_over(session, site, manifest, tmp_path):
    server, root, data = site
    session.set_setting("plugin.origin.max_rate_bytes", str(2 << 20))
    session.import_manifest(manifest, server.url("/payload.bin") + "\n" + str(root / "payload.bin"))
    dest = tmp_path / "fo.bin"
    job = session.start_job(manifest.id, destination=str(dest))
    kill_mid_transfer(session, job, server, SIZE // 5)
    st = peerdist.wait_job(session, job, timeout=120)
    assert st["state"] == "completed", st
    assert dest.read_bytes() == data
    assert st["source_fallbacks"] >= 1


def test_through_an_http_proxy(session, site, manifest, pki, tmp_path):
    server, _, data = site
    seen = []
    proxy = ScriptedServer(proxy_handler(seen))
    try:
        session.set_setting("plugin.origin.proxy", "http://127.0.0.1:%d" % proxy.port)
        session.set_setting("plugin.origin.ca_file", pki + "/ca.pem")
        st, dest, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin", "https"))
        assert st["state"] == "completed", st
        assert dest.read_bytes() == data
        assert any(l.startswith("CONNECT localhost:%d" % server.tls_port) for l in seen), seen
        session.cache_remove(manifest.id)
        st, dest, _ = fetch(session, tmp_path, manifest, server.url("/payload.bin"))
        assert st["state"] == "completed", st
        assert any(l.startswith("GET http://127.0.0.1:%d/payload.bin" % server.port) for l in seen), seen
    finally:
        proxy.close()


def test_bandwidth_cap_changes_at_run_time(session, site, manifest, tmp_path):
    server, _, data = site
    session.set_setting("plugin.origin.max_rate_bytes", str(2 * 1024 * 1024))
    session.import_manifest(manifest, server.url("/payload.bin"))
    job = session.start_job(manifest.id, destination=str(tmp_path / "capped.bin"))
    time.sleep(1.0)
    early = session.job_status(job)["bytes_verified"]
    assert early <= 3 * 1024 * 1024, early  # capped at ~2 MiB/s (+ one batch in flight)
    session.set_setting("plugin.origin.max_rate_bytes", "0")
    t0 = time.monotonic()
    st = peerdist.wait_job(session, job, timeout=60)
    assert st["state"] == "completed"
    assert time.monotonic() - t0 < 2.0, "the cap was not lifted"
