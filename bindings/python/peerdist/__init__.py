"""peerdist: peer-to-peer package distribution, Python orchestration over the C ABI.

    with peerdist.Session("/var/cache/peerdist") as s:
        s.load_plugin(peerdist.plugin_dir_default())
        m = s.publish("/srv/pkg.msi")
        job = s.start_job(m.id, destination="/tmp/pkg.msi")
        status = peerdist.wait_job(s, job)
"""

import time

from . import errors
from ._native import (Manifest, content_info, plugin_dir_default, publication_sign, publication_verify,
                      publisher_keygen, strerror, version, version_num)
from ._native import Admin as _NativeAdmin
from ._native import Session as _NativeSession
from .errors import Error

__all__ = ["Session", "Admin", "Manifest", "Error", "errors", "wait_job", "version", "version_num", "strerror",
           "plugin_dir_default", "publisher_keygen", "publication_sign", "publication_verify", "content_info"]

FINAL_STATES = ("completed", "failed", "cancelled")


class _Closing:
    """`with` support for native objects that have close()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Session(_Closing, _NativeSession):
    """A peerdist session (one cache directory). Use it as a context manager."""


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
    """Wait until a job completes, fails or is cancelled; return its final status.

    ``on_event`` is called with every event seen meanwhile (all jobs). Raises
    peerdist.errors.TimeoutError_ when ``timeout`` seconds pass first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = session.job_status(job_id)
        if status["state"] in FINAL_STATES:
            return status
        wait_ms = 200
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise errors.TimeoutError_("job %d did not finish within %ss" % (job_id, timeout), -16)
            wait_ms = max(1, min(wait_ms, int(left * 1000)))
        for event in session.wait_events(wait_ms):
            if on_event:
                on_event(event)
