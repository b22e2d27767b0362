"""The values peerdist returns, as Python types: IntEnums with the C ABI's numbers, and frozen
dataclasses for statuses, events and cache entries.

Each result also answers ``result["key"]`` with the plain value the dict-returning API of 0.4
gave (``status["state"] == "completed"``), so code written for it keeps working; new code
uses the attributes (``status.state is JobState.COMPLETED``)."""
import dataclasses
import enum
from typing import Dict, Optional


class JobState(enum.IntEnum):
    """pd_job_state."""
    QUEUED = 0
    RUNNING = 1
    PAUSED = 2
    VERIFYING = 3
    COMPLETED = 4
    FAILED = 5
    CANCELLED = 6

    @property
    def final(self):
        """Whether the job has ended (completed, failed or cancelled)."""
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


class SourceClass(enum.IntEnum):
    """pd_source_class: where bytes came from."""
    LOCAL = 0
    LAN = 1
    WAN = 2
    ORIGIN = 3


class EventType(enum.IntEnum):
    """pd_event_type."""
    NONE = 0
    DROPPED = 1
    JOB_STARTED = 2
    JOB_PROGRESS = 3
    JOB_COMPLETED = 4
    JOB_FAILED = 5
    JOB_PAUSED = 6
    JOB_RESUMED = 7
    JOB_CANCELLED = 8
    SOURCE_FALLBACK = 9
    BLOCK_REJECTED = 10
    PLUGIN_LOADED = 11
    PLUGIN = 12
    CACHE_EVICTED = 13
    LOG = 14
    TRANSFER_PAUSED = 15
    TRANSFER_RESUMED = 16
    TRANSFER_RAISED = 17


def _enum(cls, name, number=None):
    """The member for a C name ('completed', 'job-progress') or number; a value this binding
    does not know yet (a newer library) stays a plain int rather than failing."""
    if number is not None:
        try:
            return cls(number)
        except ValueError:
            return number
    return cls[name.upper().replace("-", "_")]


class _Legacy:
    """dict-style reads (``r["key"]``) answering with 0.4's plain values."""

    def __getitem__(self, key):
        return self._raw[key]

    def get(self, key, default=None):
        return self._raw.get(key, default)

    def keys(self):
        return self._raw.keys()


@dataclasses.dataclass(frozen=True)
class JobStatus(_Legacy):
    """A job's status (pd_job_status)."""
    job_id: int
    state: JobState
    content: str
    bytes_total: int
    bytes_verified: int
    bytes_by_source: Dict[SourceClass, int]
    bytes_fetched: int
    blocks_rejected: int
    error_code: int
    started_ms: int
    finished_ms: int
    message: str
    source_fallbacks: int
    _raw: dict = dataclasses.field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_native(cls, d):
        by_source = {_enum(SourceClass, k): v for k, v in d["bytes_by_source"].items()}
        fields = dict(d, state=_enum(JobState, d["state"]), bytes_by_source=by_source)
        return cls(**fields, _raw=d)

    @property
    def done(self):
        """Whether the job has ended."""
        return self.state.final

    @property
    def path(self) -> Optional[str]:
        """Where the completed content is (its destination, or the cache's file)."""
        return self.message if self.state is JobState.COMPLETED else None


@dataclasses.dataclass(frozen=True)
class Event(_Legacy):
    """One event of the session's queue (pd_event)."""
    type: EventType
    job_id: int
    content: Optional[str]
    error_code: int
    source_class: int
    bytes_done: int
    bytes_total: int
    count: int
    timestamp_ms: int
    message: str
    _raw: dict = dataclasses.field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_native(cls, d):
        fields = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name not in ("type", "_raw")}
        return cls(type=_enum(EventType, d["type"], d["type_code"]), **fields, _raw=d)


@dataclasses.dataclass(frozen=True)
class CacheEntry(_Legacy):
    """One cached content (pd_cache_entry). A content id is `content` here as in JobStatus,
    Event and the agent's replies (0.4's dict called it "id": ``entry["id"]`` still works)."""
    content: str
    name: str
    state: str  # "known", "partial" or "complete"
    size: int
    bytes_verified: int
    bytes_on_disk: int
    pinned: bool
    last_used_ms: int
    _raw: dict = dataclasses.field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_native(cls, d):
        fields = dict(d, content=d["id"])
        del fields["id"]
        return cls(**fields, _raw=d)
