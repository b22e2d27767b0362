"""peerdist: peer-to-peer package distribution, Python orchestration over the C ABI.

    with peerdist.Session("/var/cache/peerdist") as s:
        s.load_plugin()                      # the installed SDK's plugins
        m = s.publish("/srv/pkg.msi")
        job = s.start(m.id, destination="/tmp/pkg.msi")
        status = job.wait(timeout=600)       # a JobStatus; status.state is JobState.COMPLETED

Paths may be str or os.PathLike; errors are peerdist.Error subclasses that are also the
matching built-ins (FileNotFoundError, PermissionError, TimeoutError...); results are typed
(peerdist.types); ``async for event in session.events()`` follows a session from asyncio;
peerdist.agent talks to a running pd-agent. docs/python.md.
"""

import asyncio
import collections
import os
import time

from . import agent, errors
from ._native import (Manifest, content_info, plugin_dir_default, publication_sign, publication_verify,
                      publisher_keygen, strerror, version, version_num)
from ._native import Admin as _NativeAdmin
from ._native import fleet_key_read_file as _native_fleet_key_read_file
from ._native import Session as _NativeSession
from .errors import Error
from .types import CacheEntry, Event, EventType, JobState, JobStatus, SourceClass

__all__ = ["Session", "Job", "Admin", "agent", "Manifest", "Error", "errors", "wait_job", "version", "version_num", "strerror",
           "plugin_dir_default", "publisher_keygen", "publication_sign", "publication_verify", "content_info",
           "JobState", "JobStatus", "Event", "EventType", "SourceClass", "CacheEntry"]

def _path(p):
    return None if p is None else os.fsdecode(os.fspath(p))


class _Closing:
    """`with` support for native objects that have close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _fleet_key(key):
    """32 key bytes, or a key file's path (read by the library's own rule)."""
    if key is None or isinstance(key, (bytes, bytearray)):
        return None if key is None else bytes(key)
    return _native_fleet_key_read_file(_path(key))


class Session(_Closing, _NativeSession):
    """A peerdist session: one cache directory, locked while open. Use it as a context manager.

    fleet_key (32 bytes, or the path of a fleet key file) and listen ("ip:port[,ip:port]",
    port 0 picks one) make it serve and use peers; plugin_dir is what load_plugin() loads by
    default. Events of one job are never lost to another's waiter: Job.wait() keeps the
    others for poll_events(), wait_events() and events()."""

    def __init__(self, cache_dir, quota_bytes=0, quota_percent=0, worker_threads=0, event_queue_capacity=0, *,
                 fleet_key=None, listen=None, plugin_dir=None):
        super().__init__(_path(cache_dir), quota_bytes, quota_percent, worker_threads, event_queue_capacity,
                         _fleet_key(fleet_key), listen, _path(plugin_dir))
        self._pending = collections.deque()

    def load_plugin(self, path=None):
        """Loads a plugin file or a directory of them; None: the session's plugin directory."""
        return super().load_plugin(_path(path))

    def publish(self, path, name=None, origin=None, add_to_cache=False):
        """Hashes a file into a Manifest (origin recorded in it)."""
        return super().publish(_path(path), name=name, origin=origin, add_to_cache=add_to_cache)

    def start_job(self, content_id, destination=None, origin=None, pin=False, copy=False):
        """Starts a download; returns the job id (start() returns a Job)."""
        return super().start_job(content_id, destination=_path(destination), origin=origin, pin=pin, copy=copy)

    def start(self, content_id, destination=None, origin=None, pin=False, copy=False):
        """Starts a download of a known content; returns its Job."""
        return Job(self, self.start_job(content_id, destination, origin, pin, copy))

    def job(self, job_id):
        """The Job of an id this session started."""
        self.job_status(job_id)  # NotFoundError for an unknown one
        return Job(self, job_id)

    def job_status(self, job_id):
        """The job's JobStatus."""
        return JobStatus.from_native(super().job_status(job_id))

    def cache_list(self):
        """The cached contents, as CacheEntry."""
        return [CacheEntry.from_native(d) for d in super().cache_list()]

    def poll_events(self, max_events=64):
        """Events waiting now (Event), never blocking."""
        out = self._take_pending(max_events)
        if len(out) < max_events:
            out += [Event.from_native(d) for d in super().poll_events(max_events - len(out))]
        return out

    def wait_events(self, timeout_ms, max_events=64):
        """Events (Event), waiting up to timeout_ms for the first."""
        out = self._take_pending(max_events)
        if out:
            return out
        return [Event.from_native(d) for d in super().wait_events(timeout_ms, max_events)]

    async def events(self, job_id=None):
        """``async for event in session.events():`` every event as it comes, through the
        session's descriptor in the running loop (no thread); with job_id only that job's,
        the others kept queued for the session's other readers (as Job.wait() does)."""
        take = self.poll_events if job_id is None else (lambda: self._wait_for_job_events(job_id, 0))
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = self.fileno()
        loop.add_reader(fd, ready.set)
        try:
            while True:
                batch = take()
                if not batch:
                    ready.clear()
                    batch = take()  # an event may have come between the two
                    if not batch:
                        await ready.wait()
                        continue
                for event in batch:
                    yield event
        finally:
            loop.remove_reader(fd)

    def _take_pending(self, max_events):
        out = []
        while self._pending and len(out) < max_events:
            out.append(self._pending.popleft())
        return out

    def _take_pending_of(self, job_id):
        """This job's events among those already taken from the core; the others stay."""
        mine = [e for e in self._pending if e.job_id == job_id]
        if mine:
            self._pending = collections.deque(e for e in self._pending if e.job_id != job_id)
        return mine

    def _wait_for_job_events(self, job_id, timeout_ms):
        """This job's events, keeping every other job's for the session's other readers."""
        mine = self._take_pending_of(job_id)
        if mine:
            return mine
        for event in (Event.from_native(d) for d in _NativeSession.wait_events(self, timeout_ms, 64)):
            (mine if event.job_id == job_id else self._pending).append(event)
        return mine

    def _queued_job_events(self, job_id):
        """This job's events queued now, without waiting; every other job's are kept."""
        while True:
            native = _NativeSession.poll_events(self, 64)
            if not native:
                break
            self._pending.extend(Event.from_native(d) for d in native)
        return self._take_pending_of(job_id)


class Job:
    """A download this session started: its status, and the calls that change it."""

    def __init__(self, session, job_id):
        self.session, self.id = session, job_id

    def __repr__(self):
        return "<peerdist.Job %d>" % self.id

    def status(self):
        return self.session.job_status(self.id)

    def pause(self):
        self.session.pause(self.id)

    def resume(self):
        self.session.resume(self.id)

    def cancel(self):
        self.session.cancel(self.id)

    def wait(self, timeout=None, on_event=None):
        """Waits until the job completes, fails or is cancelled and returns its JobStatus;
        on_event sees this job's events meanwhile (other jobs' stay queued for others).
        Raises TimeoutError (peerdist.errors.TimeoutError_) when timeout seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if status.done:
                # The core queues the final event before the status can say done: hand on
                # what is queued now, so on_event always sees how the job ended.
                for event in self.session._queued_job_events(self.id):
                    if on_event:
                        on_event(event)
                return status
            wait_ms = 200
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise errors.TimeoutError_("job %d did not finish within %ss" % (self.id, timeout), -16)
                wait_ms = max(1, min(wait_ms, int(left * 1000)))
            for event in self.session._wait_for_job_events(self.id, wait_ms):
                if on_event:
                    on_event(event)


class Admin(_Closing, _NativeAdmin):
    """A connection to a pd-coordinator (hierarchy mode) as an administrator: `credential` is
    the path of a credential file (pd-coordinator init --admin-out, or admin-key add). The
    fleet key does not authorise admin operations; a viewer's credential runs only those that
    change nothing (whoami() says which).

        with peerdist.Admin("10.0.0.5:7400", "/etc/peerdist/admin.cred") as admin:
            admin.import_topology(open("offices.csv").read())
            print(admin.health())
    """

    def health(self):
        """Versions, devices (online), offices, contents, database check, topology kind."""
        import json
        return json.loads(self.health_json())

    def republish_all(self, entries):
        """Publishes many contents again, all or none: [(manifest, origins or None)], None
        keeping the origins the coordinator recorded. Returns {added, updated, unchanged,
        contents: [{content, name, status}]}."""
        import json
        return json.loads(self.republish_all_json([(m, None if o is None else list(o)) for m, o in entries]))

    def contents(self):
        """The catalogue: [{content, name, size, published_ms, signed, manifest, origins}]."""
        import json
        return json.loads(self.contents_json())["contents"]

    def groups(self):
        """The assignment groups: [{name, devices, contents}]."""
        import json
        return json.loads(self.groups_json())["groups"]

    def run(self, operation, *args):
        """Any operation of `pd admin` by its name and arguments, as `pd admin --json` runs it:
        the coordinator's reply, parsed (run("offices", "Branch"))."""
        import json
        return json.loads(self.run_json(operation, [str(a) for a in args]))

    def offices(self, office=None):
        """The office tree: [{name, parent, type, ranges, wan_budget, rvp, device_count, online,
        rate_bytes_per_s, bytes, devices}] — devices listed for `office` only."""
        return self.run("offices", *([office] if office else []))["offices"]

    def rollouts(self, content_id=None):
        """Each content's rollout (the 20 newest, or `content_id`): [{content, name, size, holders,
        offices: [{office, devices, complete, partial, percent, rate_bytes_per_s, bytes}],
        saved_fraction, ...}]."""
        return self.run("rollouts", *([content_id] if content_id else []))["contents"]

    def regenerate_fleet_key(self):
        """Replaces the fleet key and returns the new one (64 hex digits, shown once): every agent
        on the old key is cut off until it is given this one."""
        return self.run("fleet-key-regenerate", "--confirm", "regenerate")["fleet_key"]

    def prestage_status(self, content_id=None):
        """Pre-staging progress: [{content, name, deadline_ms, done, late, offices: [{office,
        state, rvp, verified_blocks, block_count, bytes, rate_bytes_per_s, expected_finish_ms}]}]."""
        import json
        return json.loads(self.prestage_status_json(content_id))["prestages"]

    def office_stats(self):
        """[{office, origin_bytes, wan_bytes, lan_bytes}] from the agents' job reports."""
        import csv
        import io
        rows = list(csv.DictReader(io.StringIO(self.office_stats_csv())))
        for r in rows:
            for k in ("origin_bytes", "wan_bytes", "lan_bytes"):
                r[k] = int(r[k])
        return rows


def wait_job(session, job_id, timeout=None, on_event=None):
    """Job(session, job_id).wait(timeout, on_event): kept from 0.4."""
    return Job(session, job_id).wait(timeout=timeout, on_event=on_event)
