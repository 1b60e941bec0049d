"""What readers of a run's tracking get: states, one task's row, per-name rows, the snapshot.

Immutable values (``TaskRecord`` is a copy), safe to render on any thread; ``nbexec.core.tracking``
produces them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["STATES", "TERMINAL", "TaskRecord", "TaskInfo", "NameRow", "Snapshot"]

STATES = ("pending", "running", "retrying", "success", "failed", "cancelled")
TERMINAL = frozenset(("success", "failed", "cancelled"))


class TaskRecord:
    """One task's row, copied out of the tracker (``Tracker.record``): a snapshot, not live."""

    __slots__ = ("name", "key", "state", "submitted", "started", "finished", "where", "attempts",
                 "error")  # fmt: skip

    def __init__(self, name, key, state, submitted, started, finished, where, attempts, error):
        self.name: str = name
        self.key: str = key
        self.state: str = state
        self.submitted: float = submitted
        self.started: float | None = started
        self.finished: float | None = finished
        self.where: str | None = where
        self.attempts: int = attempts
        self.error: str | None = error

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


@dataclass(frozen=True)
class TaskInfo:
    """One task as renderers see it (failures, slowest tasks)."""

    name: str
    key: str
    state: str
    duration: float | None
    where: str | None
    attempts: int
    error: str | None = None
    traceback: str | None = None
    output: str | None = None  # the last lines the task printed (failures only)


@dataclass(frozen=True)
class NameRow:
    """Counts per state for one task name, with timing aggregates over finished attempts."""

    name: str
    counts: dict[str, int]
    total: int
    mean_duration: float | None
    max_duration: float | None

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in TERMINAL)


@dataclass(frozen=True)
class Snapshot:
    """A consistent, immutable view of a run, cheap to take and safe to render on any thread."""

    rows: tuple[NameRow, ...]
    totals: dict[str, int]
    total: int
    failures: tuple[TaskInfo, ...]
    failed_count: int
    slowest: tuple[TaskInfo, ...]
    elapsed: float
    finished: bool
    version: int
    workers: dict[str, int] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
