"""The readers of a run's ``Tracker``: a task's row, and the snapshot its views render.

``TrackerReads`` is a part of ``Tracker`` (nbexec.core.tracking): it reads the columns and
aggregates the tracker keeps, under its lock, with every queued event applied first.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from array import array
from collections import deque
from typing import TYPE_CHECKING, Any

from .snapshot import STATES, NameRow, Snapshot, TaskInfo, TaskRecord

__all__ = ["TrackerReads", "OUTPUT_LINES"]

OUTPUT_LINES = 10  # lines of a failed task's output its failure entry shows


class TrackerReads:
    """Reading a tracker's rows and snapshot (the columns are ``Tracker``'s)."""

    _lock: threading.Lock
    _events: deque
    _name: list[str]
    _state: list[str]
    _where: list[str | None]
    _submitted: array
    _started: array
    _finished: array
    _attempts: array
    _keys: dict[int, str]
    _errors: dict[int, str]
    _outputs: dict[int, list[str]]
    _names: dict[str, Any]
    _failures: list[tuple[int, TaskInfo]]
    _failed_count: int
    _slowest: list[tuple[float, int]]
    _workers: dict[str, int]
    _t0: float | None
    _t_end: float | None
    _open: int
    _version: int
    info: dict

    if TYPE_CHECKING:  # Tracker's and TrackerOutput's

        def _drain(self) -> None: ...
        def key(self, task_id: int) -> str: ...
        def output(self, task_id: int) -> str: ...

    def record(self, task_id: int) -> TaskRecord:
        """A copy of the task's row, with every event so far applied."""
        with self._lock:
            if self._events:
                self._drain()
            return self._row(task_id)

    def _row(self, task_id: int) -> TaskRecord:
        started, finished = self._started[task_id], self._finished[task_id]
        return TaskRecord(
            self._name[task_id],
            self.key(task_id),
            self._state[task_id],
            self._submitted[task_id],
            started if started == started else None,
            finished if finished == finished else None,
            self._where[task_id],
            self._attempts[task_id],
            self._errors.get(task_id),
        )

    def state(self, task_id: int) -> str:
        """The task's state, with every event so far applied."""
        if self._events:
            with self._lock:
                self._drain()
        return self._state[task_id]

    def name(self, task_id: int) -> str:
        return self._name[task_id]

    def __len__(self) -> int:
        return len(self._state)

    def nbytes(self) -> int:
        """Bytes the tracker keeps for its tasks' rows (columns, given keys, error texts)."""
        columns = (self._name, self._state, self._where, self._submitted, self._started,
                   self._finished, self._attempts)  # fmt: skip
        size = sum(sys.getsizeof(c) for c in columns)
        for extra in (self._keys, self._errors):
            size += sys.getsizeof(extra) + sum(sys.getsizeof(v) for v in extra.values())
        return size

    def _info(self, task_id: int, traceback: str | None = None) -> TaskInfo:
        row = self._row(task_id)
        return TaskInfo(row.name, row.key, row.state, row.duration, row.where, row.attempts,
                        row.error, traceback)  # fmt: skip

    def _with_output(self, task_id: int, info: TaskInfo) -> TaskInfo:
        """``info`` with the last lines the task printed (they may arrive after its end)."""
        if task_id not in self._outputs:
            return info
        lines = self.output(task_id).rstrip("\n").splitlines()[-OUTPUT_LINES:]
        return dataclasses.replace(info, output="\n".join(lines))

    def snapshot(self) -> Snapshot:
        """An immutable view; its cost depends on the number of task names, not of tasks."""
        with self._lock:
            self._drain()
            rows = []
            totals = dict.fromkeys(STATES, 0)
            for name, stats in self._names.items():
                mean = stats.dur_sum / stats.dur_n if stats.dur_n else None
                counts = dict(stats.counts)
                rows.append(NameRow(name, counts, sum(counts.values()), mean, stats.dur_max))
                for state, n in counts.items():
                    totals[state] += n
            slowest = sorted(self._slowest, reverse=True)
            slowest_info = tuple(self._info(i) for _, i in slowest)
            now = time.time()
            end = self._t_end if self._t_end is not None else now
            elapsed = (end - self._t0) if self._t0 is not None else 0.0
            return Snapshot(
                rows=tuple(rows),
                totals=totals,
                total=len(self._state),
                failures=tuple(self._with_output(i, info) for i, info in self._failures),
                failed_count=self._failed_count,
                slowest=slowest_info,
                elapsed=elapsed,
                finished=self._open == 0,
                version=self._version,
                workers=dict(self._workers),
                info=dict(self.info),
            )
