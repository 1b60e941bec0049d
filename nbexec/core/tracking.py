"""One thread-safe status model per run: task states and timings from every backend.

States: "pending" (submitted, not executing), "running" (the task's code is executing now),
"retrying" (an attempt failed, the next one waits), "success", "failed", "cancelled" (never ran to
the end: interrupted, or an upstream task failed). Aggregates are kept per task name as transitions
happen, so a snapshot costs the same with 10 tasks or 100,000.

``Tracker`` writes the rows here; reading them (rows, snapshot) is ``_trackread``, what tasks print
``_trackout``, waiting for tasks to end ``_trackwait``.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from ._errtext import MAX_ERROR_TEXT, cut
from ._trackout import TrackerOutput
from ._trackread import TrackerReads
from ._trackwait import TrackerWaits
from .snapshot import STATES, TERMINAL, NameRow, Snapshot, TaskInfo, TaskRecord

__all__ = ["STATES", "TERMINAL", "TaskRecord", "Tracker", "Snapshot", "NameRow", "TaskInfo"]

_RUNNING, _RETRYING = "running", "retrying"  # event kinds; the others are terminal states
_NAN = float("nan")
_FAILURES_KEPT = 20
_SLOWEST_KEPT = 5


class _NameStats:
    __slots__ = ("counts", "dur_sum", "dur_n", "dur_max", "name")

    def __init__(self, name: str) -> None:
        self.name = name  # the one string object every row of this name shares
        self.counts = dict.fromkeys(STATES, 0)
        self.dur_sum = 0.0
        self.dur_n = 0
        self.dur_max: float | None = None


class Tracker(TrackerReads, TrackerOutput, TrackerWaits):
    """The status model of one run; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One row per task, kept in columns: no object per task for the garbage collector to walk
        # (with one per task, a run of many tasks slows every full collection).
        self._name: list[str] = []  # the name's one string object, shared
        self._state: list[str] = []
        self._where: list[str | None] = []  # interned
        self._submitted = array("d")
        self._started = array("d")  # NaN: not started
        self._finished = array("d")  # NaN: not finished
        self._attempts = array("l")
        self._keys: dict[int, str] = {}  # only the keys an executor gave
        self._errors: dict[int, str] = {}
        self._outputs: dict[int, list[str]] = {}  # only tasks that printed something
        # Where output that its task did not show goes (``Run.route_output``); how many
        # characters of each task's output came in order so far; the lock of both (_trackout).
        self.echo: Any = None
        self._held: dict[int, int] = {}
        self._out_lock = threading.Lock()
        self._names: dict[str, _NameStats] = {}
        self._failures: list[tuple[int, TaskInfo]] = []
        self._failed_count = 0
        self._slowest: list[tuple[float, int]] = []
        self._workers: dict[str, int] = {}
        self._interned: dict[str, str] = {}
        self._t0: float | None = None
        self._t_end: float | None = None
        self._open = 0
        self._unstarted = 0  # tasks that succeeded before their start was known
        self._closed = False
        self._version = 0
        self._queued = 0  # events appended (racy count: only tells views that something changed)
        self.info: dict = {}
        self._events: deque = deque()
        # wait_all sleeps on _poke; finish() wakes it only once enough tasks may have ended
        # (Event.set per task cost each pool thread a Condition round trip and the waiter a wake-up).
        self._poke: SimpleQueue = SimpleQueue()
        self._waiters = 0
        self._finish_calls = itertools.count(1)
        # finish() calls so far (a racy copy: it only hurries or delays a poke)
        self._finished_calls = 0
        self._applied_finishes = 0  # finish events applied
        self._wake_at = 0
        self._on_end: dict[int, Callable[[], None]] = {}  # see on_end()

    # --- writers -----------------------------------------------------------------------------

    def add(self, name: str, key: str | None, running_on: str | None = None) -> int:
        """Register a new task and return its id: pending, or already running on ``running_on``.

        ``key=None`` names it ``<name>-<id>`` (``key(id)``), without keeping a string for it.
        """
        now = time.time()
        state = "pending" if running_on is None else "running"
        with self._lock:
            if len(self._events) > 256:
                self._drain()
            task_id = len(self._state)
            stats = self._names.get(name)
            if stats is None or self._t_end is not None or self._t0 is None:
                stats = self._opening(name, now)
            self._name.append(stats.name)
            self._state.append(state)
            self._submitted.append(now)
            self._finished.append(_NAN)
            if running_on is None:
                self._where.append(None)
                self._started.append(_NAN)
                self._attempts.append(0)
            else:
                where = self._interned.setdefault(running_on, running_on)
                self._where.append(where)
                self._started.append(now)
                self._attempts.append(1)
                self._workers[where] = self._workers.get(where, 0) + 1
            if key is not None:
                self._keys[task_id] = key
            stats.counts[state] += 1
            self._open += 1
            self._version += 1
        return task_id

    def add_many(self, name: str, count: int) -> range:
        """Register ``count`` pending tasks named ``name`` at once; return their ids."""
        now = time.time()
        with self._lock:
            first = len(self._state)
            stats = self._opening(name, now)
            self._name.extend(itertools.repeat(stats.name, count))
            self._state.extend(itertools.repeat("pending", count))
            self._where.extend(itertools.repeat(None, count))
            self._submitted.extend(itertools.repeat(now, count))
            self._started.extend(itertools.repeat(_NAN, count))
            self._finished.extend(itertools.repeat(_NAN, count))
            self._attempts.extend(itertools.repeat(0, count))
            stats.counts["pending"] += count
            self._open += count
            self._version += 1
        return range(first, first + count)

    def _opening(self, name: str, now: float) -> _NameStats:
        """Under the lock, before tasks named ``name`` are added at ``now``: their stats."""
        if self._t0 is None:
            self._t0 = now
        self._t_end = None
        stats = self._names.get(name)
        if stats is None:
            name = sys.intern(name)
            stats = self._names[name] = _NameStats(name)
        return stats

    def key(self, task_id: int) -> str:
        """The task's key: the one it was given, else ``<name>-<id>``."""
        key = self._keys.get(task_id)
        return key if key is not None else f"{self._name[task_id]}-{task_id}"

    def set_key(self, task_id: int, key: str | None) -> None:
        """Give the task the key its executor chose (None keeps ``<name>-<id>``)."""
        if key is not None:
            self._keys[task_id] = key

    def _move(self, task_id: int, state: str) -> None:
        old = self._state[task_id]
        counts = self._names[self._name[task_id]].counts
        counts[old] -= 1
        counts[state] += 1
        self._state[task_id] = state

    def _set_where(self, task_id: int, where: str, count: bool) -> None:
        where = self._where[task_id] = self._interned.setdefault(where, where)
        if count:
            self._workers[where] = self._workers.get(where, 0) + 1

    # Threads that run tasks never take the lock: they append to ``_events`` (a deque, atomic
    # under the GIL) and whoever reads next applies them. A lock shared with every pool thread
    # made the submitting thread queue behind them, and the cost per task grew with the backlog.

    def running(
        self, task_id: int, t: float | None = None, where: str | None = None, attempt: int = 1
    ) -> None:
        """The task's code started executing (attempt ``attempt``) at ``t`` on ``where``."""
        self._events.append((_RUNNING, task_id, t or time.time(), where, attempt))
        self._queued += 1

    def retrying(self, task_id: int, attempt: int, error: str | None = None) -> None:
        """Attempt ``attempt`` failed; another follows after the retry delay."""
        self._events.append((_RETRYING, task_id, attempt, error, None))
        self._queued += 1

    def finish(
        self,
        task_id: int,
        state: str,
        error: str | None = None,
        traceback: str | None = None,
        ran: tuple[float, float, str] | None = None,
    ) -> None:
        """The task ended in ``state`` ("success", "failed" or "cancelled"); later calls are ignored.

        ``ran``: ``(t_start, t_end, where)`` when the executor knows when and where it ran.
        """
        if state not in TERMINAL:
            raise ValueError(f"finish() takes one of {sorted(TERMINAL)}, got {state!r}")
        if error is not None and len(error) > MAX_ERROR_TEXT:  # the exception stays whole
            error = cut(error)
        if traceback is not None and len(traceback) > 2 * MAX_ERROR_TEXT:
            traceback = cut(traceback, 2 * MAX_ERROR_TEXT)
        self._events.append((state, task_id, error, traceback, ran or time.time()))
        self._queued += 1
        calls = self._finished_calls = next(self._finish_calls)
        if self._waiters and calls >= self._wake_at:
            self._poke.put(None)
        if self._on_end:
            hook = self._on_end.pop(task_id, None)
            if hook is not None:
                hook()

    @property
    def version(self) -> int:
        """Grows whenever something changed (cheap: views poll it to skip needless refreshes)."""
        return self._version + self._queued

    def _drain(self) -> None:
        """Apply the queued events (call with the lock held)."""
        events = self._events
        while events:
            kind, task_id, a, b, c = events.popleft()
            if kind is _RUNNING:
                self._apply_running(task_id, a, b, c)
            elif kind is _RETRYING:
                self._apply_retrying(task_id, a, b)
            else:
                self._applied_finishes += 1
                self._apply_finish(task_id, kind, a, b, c)

    def _apply_running(self, task_id: int, t: float, where: str | None, attempt: int) -> None:
        if attempt > self._attempts[task_id]:
            self._attempts[task_id] = attempt
        started = self._started
        if self._state[task_id] in TERMINAL:
            # A late event (Dask sends it through the scheduler, often after the result): keep
            # where and when, and count the duration from the task's start on its worker.
            if started[task_id] != started[task_id] and t is not None:
                started[task_id] = t
                finished = self._finished[task_id]
                if finished == finished:
                    self._count_duration(task_id, self._state[task_id], finished - t)
                    if self._state[task_id] == "success" and task_id in self._keys:
                        self._unstarted -= 1
                    self._version += 1
            if where is not None and self._where[task_id] is None:
                self._set_where(task_id, where, count=False)
            return
        if started[task_id] != started[task_id]:  # NaN: not started yet
            started[task_id] = t or time.time()
        if where is not None and self._where[task_id] is None:
            self._set_where(task_id, where, count=True)
        self._move(task_id, "running")
        self._version += 1

    def _apply_retrying(self, task_id: int, attempt: int, error: str | None) -> None:
        if attempt > self._attempts[task_id]:
            self._attempts[task_id] = attempt
        if self._state[task_id] in TERMINAL:
            return
        if error is not None:
            self._errors[task_id] = error
        self._move(task_id, "retrying")
        self._version += 1

    def _apply_finish(
        self, task_id: int, state: str, error: str | None, traceback: str | None, now: Any
    ) -> None:
        if self._state[task_id] in TERMINAL:
            return
        started = self._started
        if type(now) is tuple:  # (t_start, t_end, where)
            t_start, now, where = now
            if started[task_id] != started[task_id]:
                started[task_id] = t_start
            if where is not None and self._where[task_id] is None:
                self._set_where(task_id, where, count=True)
        self._move(task_id, state)
        self._finished[task_id] = now
        if state == "success":
            if self._errors:
                self._errors.pop(task_id, None)
            if self._attempts[task_id] == 0:
                self._attempts[task_id] = 1
        elif error is not None:
            self._errors[task_id] = error
        t_start = started[task_id]
        if t_start == t_start:  # not NaN
            self._count_duration(task_id, state, now - t_start)
        elif state == "success" and task_id in self._keys:
            # An executor's task (it has a key): its code reported its start through the event
            # channel, and that report is still on its way (see wait_started).
            self._unstarted += 1
        if state == "failed":
            self._failed_count += 1
            if len(self._failures) < _FAILURES_KEPT:
                self._failures.append((task_id, self._info(task_id, traceback)))
                self._failures.sort(key=lambda item: item[0])
        self._open -= 1
        if self._open == 0:
            self._t_end = now
        self._version += 1

    def _count_duration(self, task_id: int, state: str, duration: float) -> None:
        stats = self._names[self._name[task_id]]
        stats.dur_sum += duration
        stats.dur_n += 1
        if stats.dur_max is None or duration > stats.dur_max:
            stats.dur_max = duration
        if state == "success":
            if len(self._slowest) < _SLOWEST_KEPT:
                heapq.heappush(self._slowest, (duration, task_id))
            elif duration > self._slowest[0][0]:
                heapq.heapreplace(self._slowest, (duration, task_id))

    def event(self, task_id: int, event: str, info: dict) -> None:
        """Apply an event sent by running task code through an executor's event channel."""
        if event == "running":
            self.running(task_id, info.get("t"), info.get("where"), info.get("attempt", 1))
        elif event == "retrying":
            self.retrying(task_id, info.get("attempt", 1), info.get("error"))
        elif event == "output":
            self.output_event(task_id, info)

    def set_info(self, **items: object) -> None:
        """Update ``info`` (a None value removes the item) so that views see a new version."""
        with self._lock:
            for name, value in items.items():
                if value is None:
                    self.info.pop(name, None)
                else:
                    self.info[name] = value
            self._version += 1
