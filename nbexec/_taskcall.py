"""The wrapper every run task executes, wherever it runs.

This module travels by value (``cloudpickle.register_pickle_by_value``): Dask workers need nothing of
nbexec. It may import only the standard library.
"""

from __future__ import annotations

import os
import sys
import threading
import time

# Per-thread state lives on the Thread object: a module-level threading.local could not travel by value.


def in_task_body() -> bool:
    """True while this thread executes a task's own code (nested task calls are plain calls)."""
    return getattr(threading.current_thread(), "_nbexec_depth", 0) > 0


def _where(thread) -> str:
    where = getattr(thread, "_nbexec_where", None)
    if where is None:
        where = (
            f"pid {os.getpid()}"
            if thread is threading.main_thread()
            else f"pid {os.getpid()} {thread.name}"
        )
        if "distributed" in sys.modules:
            try:
                where = sys.modules["distributed"].get_worker().address
            except Exception:
                pass
        thread._nbexec_where = where
    return where


class TaskCall:
    """Call ``fn`` reporting "running" (and "retrying") through ``emit``, retrying with a delay."""

    __slots__ = ("fn", "task_id", "emit", "retries", "retry_delay")

    def __init__(self, fn, task_id, emit, retries=0, retry_delay=0.0):
        self.fn = fn
        self.task_id = task_id
        self.emit = emit
        self.retries = retries
        self.retry_delay = retry_delay

    def __reduce__(self):
        return (TaskCall, (self.fn, self.task_id, self.emit, self.retries, self.retry_delay))

    def __call__(self, *args, **kwargs):
        emit = self.emit
        attempt = 0
        thread = threading.current_thread()
        thread._nbexec_depth = getattr(thread, "_nbexec_depth", 0) + 1
        try:
            while True:
                attempt += 1
                if emit is not None:
                    emit(
                        self.task_id,
                        "running",
                        {"t": time.time(), "where": _where(thread), "attempt": attempt},
                    )
                try:
                    return self.fn(*args, **kwargs)
                except Exception as exc:
                    if attempt > self.retries:
                        raise
                    if emit is not None:
                        emit(self.task_id, "retrying", {"t": time.time(), "attempt": attempt,
                                                        "error": f"{type(exc).__name__}: {exc}"[:300]})  # fmt: skip
                    if self.retry_delay:
                        time.sleep(self.retry_delay)
        finally:
            thread._nbexec_depth -= 1


class MappedTaskCall(TaskCall):
    """A TaskCall shared by every element of a map: the task id comes as the first argument."""

    __slots__ = ()

    def __init__(self, fn, emit, retries=0, retry_delay=0.0):
        super().__init__(fn, None, emit, retries, retry_delay)

    def __reduce__(self):
        return (MappedTaskCall, (self.fn, self.emit, self.retries, self.retry_delay))

    def __call__(self, task_id, *args):
        return TaskCall(self.fn, task_id, self.emit, self.retries, self.retry_delay)(*args)
