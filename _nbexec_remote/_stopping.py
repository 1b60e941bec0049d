"""Stopping an executor's tasks on a Dask worker: the per-worker stop flag checked before a task
starts, interrupting running tasks, and freeing the threads of interrupted ones. The functions
taking ``dask_worker`` run on the worker's event loop (``client.run``)."""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ._context import _worker_or_none
from ._exits import TaskInterrupted, TaskNotStarted

#: The Worker attribute holding the tokens of the executors stopped on that worker.
_STOPPED_ATTR = "_nbexec_stopped"


def run_task(token: str | None, fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Call ``fn(*args, **kwargs)`` unless the executor ``token`` has stopped on this worker."""
    if token is not None:
        worker = _worker_or_none()
        if worker is not None and token in getattr(worker, _STOPPED_ATTR, ()):
            raise TaskNotStarted(f"executor stopped before task started (token {token})")
    return fn(*args, **kwargs)


def stop_token(token: str, interrupt_all: bool = False, dask_worker: Any = None) -> list[str]:
    """Mark ``token`` stopped on this worker; return the keys executing now (interrupt them if asked).

    Runs on the worker's event loop (``client.run``), where task threads are registered in
    ``active_threads`` before they start, so every task not listed here sees the flag.
    """
    stopped = getattr(dask_worker, _STOPPED_ATTR, None)
    if stopped is None:
        stopped = set()
        setattr(dask_worker, _STOPPED_ATTR, stopped)
    stopped.add(token)
    keys = [str(k) for k in dask_worker.active_threads.values()]
    if interrupt_all:
        _async_raise(dict(dask_worker.active_threads))
    return keys


def interrupt_keys(keys: Iterable[str], dask_worker: Any = None) -> int:
    """Raise ``TaskInterrupted`` in the worker threads executing ``keys``; return how many."""
    wanted = set(keys)
    threads = {i: k for i, k in dict(dask_worker.active_threads).items() if str(k) in wanted}
    return _async_raise(threads)


def still_running(keys: Iterable[str], dask_worker: Any = None) -> list[str]:
    """Which of ``keys`` a worker thread is still executing (e.g. blocked in C after an interrupt)."""
    wanted = set(keys)
    return [str(k) for k in dict(dask_worker.active_threads).values() if str(k) in wanted]


def release_threads(keys: Iterable[str], dask_worker: Any = None) -> list[str]:
    """On a worker's event loop: take the threads still running ``keys`` (interrupted, blocked in
    C) out of its pool the way ``secede()`` does, so new tasks get the full thread count at once;
    the interrupted task runs no further line (its exception is pending). Returns the keys freed."""
    from distributed.threadpoolexecutor import threads_lock
    from distributed.worker_state_machine import SecedeEvent

    wanted = set(keys)
    executor = dask_worker.executors.get("default")
    threads = {t.ident: t for t in threading.enumerate()}
    freed = []
    for ident, key in list(dict(dask_worker.active_threads).items()):
        ts = dask_worker.state.tasks.get(key)
        if str(key) not in wanted or ts is None:
            continue
        if ts.state != "executing" and not (ts.state == "cancelled" and ts.previous == "executing"):
            continue
        with threads_lock:
            pool = getattr(executor, "_threads", None)
            if pool is not None and threads.get(ident) in pool:
                pool.discard(threads[ident])
                executor._adjust_thread_count()
        dask_worker.handle_stimulus(
            SecedeEvent(key=key, compute_duration=0.0, stimulus_id=f"nbexec-free-{time.time()}")
        )
        freed.append(str(key))
    return freed


def _async_raise(threads: dict[int, Any]) -> int:
    count = 0
    for ident in threads:
        done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(TaskInterrupted)
        )
        count += int(done == 1)
    return count
