"""Waiting on a run's ``Tracker``: until no task is open, until the tasks that succeeded have
their starts (Dask sends them through the scheduler), or for one task's end (a hook).

``TrackerWaits`` is a part of ``Tracker`` (nbexec.core.tracking).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING

from .snapshot import TERMINAL

__all__ = ["TrackerWaits"]


class TrackerWaits:
    """The waits of a tracker (its counters are ``Tracker``'s)."""

    _lock: threading.Lock
    _state: list[str]
    _open: int
    _unstarted: int
    _waiters: int
    _wake_at: int
    _applied_finishes: int
    _finished_calls: int
    _poke: SimpleQueue
    _on_end: dict[int, Callable[[], None]]

    if TYPE_CHECKING:  # Tracker's

        def _drain(self) -> None: ...

    def wait_all(self, timeout: float | None = None) -> bool:
        """Block until no task is open (or ``timeout`` passes); True if none is open."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiters += 1
        try:
            while True:
                with self._lock:
                    self._drain()
                    if self._open == 0:
                        return True
                    # Every open task still has its finish() to come: wake when they all did.
                    self._wake_at = self._applied_finishes + self._open
                if self._finished_calls >= self._wake_at:
                    continue  # they came while we drained
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                try:
                    self._poke.get(timeout=remaining)
                    while True:
                        self._poke.get_nowait()
                except Empty:
                    pass
        finally:
            self._waiters -= 1

    def wait_started(self, timeout: float = 1.0) -> bool:
        """Wait (at most ``timeout`` seconds) until every task that succeeded has its start: on
        Dask the "running" event travels through the scheduler and may come after the result.
        True when none is missing."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._drain()
                if self._unstarted <= 0:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def on_end(self, task_id: int, hook: Callable[[], None]) -> None:
        """Call ``hook()`` once the task has ended: now if it has, else in the thread that ends it
        (right after its ``finish``). One hook per task; it must not raise."""
        with self._lock:
            self._drain()
            if self._state[task_id] not in TERMINAL:
                self._on_end[task_id] = hook
                # A finish() that came after the drain may have looked for the hook before it was
                # set: check again; whichever side pops the hook calls it.
                self._drain()
                if self._state[task_id] not in TERMINAL or self._on_end.pop(task_id, None) is None:
                    return
        hook()
