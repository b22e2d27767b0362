"""The Python package as a Python programmer uses it: path-like arguments, typed results and
enums, Job objects, exceptions that are also the built-ins, events that one job's waiter does
not take from another, asyncio, a session that serves peers, docstrings everywhere, and
peerdist.agent against a real pd-agent."""
import asyncio
import inspect
import os
import pathlib
import time

import pytest

import peerdist
from peerdist import JobState, SourceClass, EventType
from peerdist import _native
from netlab.agent import Agent, write_key


@pytest.fixture
def signed(tmp_path):
    """Two contents published with path-like arguments, trusted through their records."""
    public, secret = peerdist.publisher_keygen()
    made = []
    with peerdist.Session(tmp_path / "pub") as pub:
        for name, size in (("a.bin", 1 << 20), ("b.bin", 3 << 20)):
            src = tmp_path / name
            src.write_bytes(os.urandom(size))
            m = pub.publish(src, name=name)
            record = peerdist.publication_sign(m, "file://" + str(src), 1, secret)
            made.append((src, m, record))
    return public, made


def open_session(tmp_path, public, plugin_dir, **kw):
    s = peerdist.Session(tmp_path / "cache", plugin_dir=pathlib.Path(plugin_dir), **kw)
    s.load_plugin()  # the session's plugin_dir
    s.set_setting("trust.publisher_keys", public.hex())
    return s


def test_typed_results_jobs_and_paths(tmp_path, plugin_dir, signed):
    public, made = signed
    src, m, record = made[0]
    with open_session(tmp_path, public, plugin_dir) as s:
        s.import_manifest(m, publication=record)
        (tmp_path / "out").mkdir()
        job = s.start(m.id, destination=tmp_path / "out" / "a.bin")
        assert isinstance(job, peerdist.Job)
        seen = []
        status = job.wait(timeout=60, on_event=seen.append)
        assert status.state is JobState.COMPLETED and status.done
        assert status.bytes_by_source[SourceClass.ORIGIN] == src.stat().st_size
        assert status.path == str(tmp_path / "out" / "a.bin")
        assert (tmp_path / "out" / "a.bin").read_bytes() == src.read_bytes()
        assert status["state"] == "completed" and status["bytes_by_source"]["origin"] == src.stat().st_size  # 0.4 reads
        assert EventType.JOB_COMPLETED in [e.type for e in seen] and all(e.job_id == job.id for e in seen)
        [entry] = s.cache_list()
        assert entry.content == m.id and entry["id"] == m.id and entry.state == "complete" and entry.name == "a.bin"
        assert s.job(job.id).status().state is JobState.COMPLETED


def test_a_wait_that_starts_after_the_job_ended_still_hands_on_its_final_event(tmp_path, plugin_dir, signed):
    """The job ends while no one reads events (CI once caught the race: status said done
    before wait() had taken JOB_COMPLETED, and on_event never saw it)."""
    public, made = signed
    src, m, record = made[0]
    with open_session(tmp_path, public, plugin_dir) as s:
        s.import_manifest(m, publication=record)
        job = s.start(m.id, destination=tmp_path / "a.bin")
        deadline = time.monotonic() + 60
        while not job.status().done:
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        seen = []
        assert job.wait(timeout=5, on_event=seen.append).state is JobState.COMPLETED
        assert [e.type for e in seen][-1] is EventType.JOB_COMPLETED
        assert job.wait(timeout=5, on_event=seen.append).done and seen.count(seen[-1]) == 1  # taken once


def test_errors_are_the_builtins_too(tmp_path, plugin_dir, signed):
    public, made = signed
    with pytest.raises(FileNotFoundError):
        peerdist.Manifest.read(str(tmp_path / "missing.pdm"))
    with open_session(tmp_path, public, plugin_dir) as s:
        with pytest.raises(FileNotFoundError) as e:
            s.export_manifest("ab" * 32)
        assert isinstance(e.value, peerdist.errors.NotFoundError) and e.value.code == -3 and "not known" in str(e.value)
        with pytest.raises(FileNotFoundError):
            s.job(999)
        src, m, _ = made[1]
        with pytest.raises(PermissionError):  # AuthError: no record from a trusted publisher
            s.import_manifest(m, "file://" + str(src))
        with pytest.raises(ValueError):
            s.start_job("not an id")
    with pytest.raises(BlockingIOError):  # BusyError: the cache is locked by another session
        with peerdist.Session(tmp_path / "cache"), peerdist.Session(tmp_path / "cache"):
            pass


def test_a_job_waiter_keeps_other_jobs_events_queued(tmp_path, plugin_dir, signed):
    """0.4's wait_job consumed every event it saw: a job that ended while another was waited
    for lost its completion to that waiter. Now the waiter keeps them for the session."""
    public, made = signed
    with open_session(tmp_path, public, plugin_dir) as s:
        (src_small, m_small, rec_small), (src_big, m_big, rec_big) = made
        s.import_manifest(m_small, publication=rec_small)
        s.import_manifest(m_big, publication=rec_big)
        small = s.start(m_small.id)  # ends first, while the big one is waited for
        big = s.start(m_big.id)
        big_events = []
        big.wait(timeout=60, on_event=big_events.append)
        assert {e.job_id for e in big_events} == {big.id}
        while not small.status().done:
            time.sleep(0.05)  # nothing reads events meanwhile
        small_kinds = [e.type for e in s.poll_events(1000) if e.job_id == small.id]
        assert EventType.JOB_COMPLETED in small_kinds, small_kinds


def test_following_one_job_from_asyncio_keeps_the_others_events(tmp_path, plugin_dir, signed):
    public, made = signed
    (src_small, m_small, rec_small), (src_big, m_big, rec_big) = made

    async def follow(s, job):
        async for event in s.events(job.id):
            assert event.job_id == job.id
            if event.type is EventType.JOB_COMPLETED:
                return

    with open_session(tmp_path, public, plugin_dir) as s:
        s.import_manifest(m_small, publication=rec_small)
        s.import_manifest(m_big, publication=rec_big)
        small = s.start(m_small.id)  # ends while the big one is followed
        big = s.start(m_big.id)
        asyncio.run(asyncio.wait_for(follow(s, big), 60))
        while not small.status().done:
            time.sleep(0.05)
        assert EventType.JOB_COMPLETED in [e.type for e in s.poll_events(1000) if e.job_id == small.id]


def test_asyncio_events(tmp_path, plugin_dir, signed):
    public, made = signed
    src, m, record = made[1]

    async def follow(s, job):
        async for event in s.events(job.id):
            if event.type in (EventType.JOB_COMPLETED, EventType.JOB_FAILED):
                return event

    with open_session(tmp_path, public, plugin_dir) as s:
        s.import_manifest(m, publication=record)
        job = s.start(m.id)
        event = asyncio.run(asyncio.wait_for(follow(s, job), 60))
        assert event.type is EventType.JOB_COMPLETED and event.bytes_done == src.stat().st_size


def test_a_session_with_a_fleet_key_serves_peers(tmp_path):
    key = tmp_path / "fleet.key"
    write_key(key)
    with peerdist.Session(tmp_path / "c", fleet_key=key, listen="127.0.0.1:0") as s:
        [address] = s.listen_addresses()
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
    os.chmod(key, 0o644)
    with pytest.raises(ValueError, match="other users"):
        peerdist.Session(tmp_path / "c", fleet_key=key)
    with pytest.raises(ValueError, match="32 bytes"):
        peerdist.Session(tmp_path / "c", fleet_key=b"short")
    guessable = tmp_path / "zeros.key"  # 64 hex digits, but no random key: the library's rule refuses it
    guessable.write_text("00" * 32 + "\n")
    os.chmod(guessable, 0o600)
    with pytest.raises(ValueError, match="random key"):
        peerdist.Session(tmp_path / "c", fleet_key=guessable)


def test_every_native_function_is_documented():
    undocumented = []
    for owner in (_native, _native.Session, _native.Admin, _native.Manifest):
        for name, member in inspect.getmembers(owner):
            if name.startswith("_") or not callable(member):
                continue
            doc = (member.__doc__ or "").split("\n")
            # pybind11 puts the signature on the first line; the text follows it.
            text = "\n".join(doc[1:] if doc and "(" in doc[0] and "->" in doc[0] else doc).strip()
            if not text:
                undocumented.append("%s.%s" % (getattr(owner, "__name__", owner), name))
    assert undocumented == []


def test_the_agent_client_against_a_real_agent(tmp_path, host_bin, plugin_dir, signed):
    public, made = signed
    src, m, record = made[0]
    manifest = tmp_path / "a.pdm"
    m.write(str(manifest))
    (tmp_path / "a.pdm.sig").write_bytes(record)
    a = Agent(os.path.join(host_bin, "pd-agent"), tmp_path / "agent", plugin_dir=plugin_dir)
    a.config["settings"] = {"trust.publisher_keys": public.hex()}
    a.start()
    try:
        with peerdist.agent.Client(pathlib.Path(a.socket)) as agent:
            assert agent.version() == peerdist.version()
            job = agent.download(manifest=manifest, dest=tmp_path / "via-agent.bin", origin=str(src))
            st = agent.wait(job, timeout=60)
            assert st["state"] == "completed" and (tmp_path / "via-agent.bin").read_bytes() == src.read_bytes()
            assert [e["content"] for e in agent.cache()] == [m.id]
            with pytest.raises(FileNotFoundError):
                agent.cancel(999)
            with pytest.raises(peerdist.Error):
                agent.download(manifest=tmp_path / "missing.pdm")
    finally:
        a.kill()
    with pytest.raises(ConnectionError, match="cannot reach pd-agent"):
        peerdist.agent.Client(tmp_path / "nope.sock")
