"""Timeouts of tasks whose worker thread is blocked in C where the kernel cannot reach it (Dask).

A worker's watchdog raises ``TimeoutError`` in the task's thread at its deadline, but a thread
blocked in C (``time.sleep``, a socket read) sees it only when the call returns: the task would
hold its worker thread, and its run would wait, until then. The kernel watches the tasks with a
timeout of runs on such executors: one still running ``MARGIN`` seconds past its timeout on its
last attempt fails now with ``TimeoutError`` and is stopped as ``cancel()`` stops a task
(``Executor.interrupt``): on a Dask cluster nbexec created its thread leaves the worker's pool and
a new one takes its place; on an external cluster it is reported busy (``%executor status``).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from ._runfuture import report_outcome
from .futures import _Done
from .snapshot import TERMINAL

if TYPE_CHECKING:
    from .futures import TaskFuture

__all__ = ["watch", "MARGIN"]

#: Seconds past its timeout a task may still report "running" (its failure on the way back).
MARGIN = 0.5
_TICK = 0.1

_cond = threading.Condition()
_watched: dict[int, tuple[TaskFuture, float, int]] = {}  # id(future) -> (future, timeout, retries)
_thread: threading.Thread | None = None


def watch(future: TaskFuture, timeout: float, retries: int) -> None:
    """Fail ``future`` with ``TimeoutError`` and free its worker if it runs ``timeout`` seconds
    (plus ``MARGIN``) on its last attempt (attempt ``retries + 1``) without ending."""
    global _thread
    with _cond:
        _watched[id(future)] = (future, timeout, retries)
        if _thread is None:
            _thread = threading.Thread(target=_loop, name="nbexec-task-timeouts", daemon=True)
            _thread.start()
        _cond.notify()


def _loop() -> None:
    while True:
        with _cond:
            while not _watched:
                _cond.wait()
            entries = list(_watched.items())
        now = time.time()
        for ident, (future, timeout, retries) in entries:
            expired = False
            try:
                tracker = future._run.tracker
                state = tracker.state(future._id)
                if state == "running":
                    record = tracker.record(future._id)
                    started = record.started
                    expired = (
                        record.attempts > retries
                        and started is not None
                        and now - started > timeout + MARGIN
                    )
            except Exception:  # noqa: BLE001 - a broken entry is dropped, the loop goes on
                state = "failed"
            if state in TERMINAL or expired:
                with _cond:
                    _watched.pop(ident, None)
            if expired:
                _expire(future, timeout)
        time.sleep(_TICK)


def _expire(future: TaskFuture, timeout: float) -> None:
    """Fail the task with ``TimeoutError`` now and stop it where it runs."""
    run = future._run
    efut = future._efut
    error = TimeoutError(f"the task ran longer than its timeout of {timeout:g} s")
    try:
        future._efut = _Done(None, error)  # what result() and the run's failure give from now on
        report_outcome(run.tracker, future._id, future._deps, error)
        run.executor.interrupt([efut])
    except Exception:  # noqa: BLE001 - the executor may be stopping
        pass


def _watched_count() -> int:
    """How many tasks are watched now (for tests)."""
    with _cond:
        return len(_watched)
