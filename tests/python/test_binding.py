import os
import select

import pytest

import peerdist
from peerdist import errors


def test_version_matches():
    assert peerdist.version() == "0.4.0"
    assert peerdist.version_num() == 0x000400


def test_publish_download_with_events(tmp_path, plugin_dir, payload):
    path, data = payload
    with peerdist.Session(str(tmp_path / "pub")) as pub:
        manifest = pub.publish(str(path), name="payload.bin")
    assert len(manifest.id) == 64 and manifest.size == len(data)
    manifest.write(str(tmp_path / "m.pdm"))

    public, secret = peerdist.publisher_keygen()
    record = peerdist.publication_sign(manifest, "file://" + str(path), 1, secret)

    seen = []
    with peerdist.Session(str(tmp_path / "cache")) as s:
        s.load_plugin(plugin_dir)
        assert [p["name"] for p in s.plugins()] == ["branchcache", "hierarchy", "origin"]
        m = peerdist.Manifest.read(str(tmp_path / "m.pdm"))
        # Only what a trusted publisher signed is installed; the record names the origin.
        with pytest.raises(errors.AuthError, match="has no publication record"):
            s.import_manifest(m, "file://" + str(path))
        with pytest.raises(errors.AuthError, match="no publisher key is trusted"):
            s.import_manifest(m, publication=record)
        s.set_setting("trust.publisher_keys", public.hex())
        s.import_manifest(m, publication=record)
        dest = tmp_path / "out.bin"
        job = s.start_job(m.id, destination=str(dest))
        status = peerdist.wait_job(s, job, timeout=60, on_event=seen.append)
        assert status["state"] == "completed", status
        assert status["bytes_by_source"]["origin"] == len(data)
        assert dest.read_bytes() == data
        entries = s.cache_list()
        assert entries[0]["state"] == "complete" and entries[0]["name"] == "payload.bin"
    types = {e["type"] for e in seen}
    assert "job-completed" in types and "job-started" in types


def test_errors_map_to_exception_classes(tmp_path):
    with pytest.raises(errors.InvalidError):
        peerdist.Manifest.parse(b"garbage")
    with peerdist.Session(str(tmp_path / "c")) as s:
        with pytest.raises(errors.NotFoundError):
            s.set_setting("no.such", "1")
        with pytest.raises(errors.InvalidError):
            s.set_setting("job.max_pieces_in_flight", "-1")
        with pytest.raises(errors.NotFoundError):
            s.start_job("00" * 32)
        with pytest.raises(errors.BusyError):
            peerdist.Session(str(tmp_path / "c"))
    with pytest.raises(errors.MisuseError):
        s.jobs()  # closed
    assert issubclass(errors.IntegrityError, peerdist.Error)


def test_tampered_origin_raises_nothing_but_reports_integrity(tmp_path, plugin_dir, payload):
    path, data = payload
    m = peerdist.Manifest.hash_file(str(path))
    bad = bytearray(data)
    bad[70000] ^= 1
    path.write_bytes(bytes(bad))
    with peerdist.Session(str(tmp_path / "c")) as s:
        s.load_plugin(plugin_dir)
        s.set_setting("trust.allow_unsigned", "1")  # about the bytes, not the publisher
        s.import_manifest(m, str(path))
        job = s.start_job(m.id, destination=str(tmp_path / "out"))
        st = peerdist.wait_job(s, job, timeout=60)
        assert st["state"] == "failed"
        assert st["error_code"] == errors.IntegrityError.code
        assert "block 1 " in st["message"]
        assert not (tmp_path / "out").exists()


def test_fileno_is_readable_when_events_wait(tmp_path, plugin_dir):
    with peerdist.Session(str(tmp_path / "c")) as s:
        fd = s.fileno()
        assert select.select([fd], [], [], 0)[0] == []
        s.load_plugin(plugin_dir)
        assert select.select([fd], [], [], 1)[0] == [fd]
        s.poll_events(1000)
        assert select.select([fd], [], [], 0)[0] == []


def test_publication_records(payload):
    path, _ = payload
    m = peerdist.Manifest.hash_file(str(path))
    pk, sk = peerdist.publisher_keygen()
    rec = peerdist.publication_sign(m, "https://cdn/x", 42, sk)
    info = peerdist.publication_verify(rec, pk)
    assert info["id"] == m.id and info["published_ms"] == 42
    other_pk, _ = peerdist.publisher_keygen()
    with pytest.raises(errors.AuthError):
        peerdist.publication_verify(rec, other_pk)


def test_content_info_and_device_facts(tmp_path, payload):
    path, _ = payload
    ci = peerdist.content_info(str(path), 1, bytes(32))
    assert ci[:2] == b"\x00\x01"
    with peerdist.Session(str(tmp_path / "c"), quota_bytes=10 << 20) as s:
        facts = s.device_facts()
        assert facts["usable_free_bytes"] == 10 << 20
        assert facts["chassis"] in ("unknown", "desktop", "laptop", "server")


def test_serving_stats_start_at_zero_and_count_nothing_without_a_peer_server(tmp_path):
    with peerdist.Session(str(tmp_path / "c")) as s:
        assert s.stats() == {"bytes_uploaded": 0, "blocks_uploaded": 0, "peer_connections": 0,
                             "peers_refused": 0, "connections_open": 0, "wan_budget_bytes": 0}
        s.set_setting("wan.budget_bytes", "1000000")
        assert s.stats()["wan_budget_bytes"] == 1000000  # the office WAN budget in force
