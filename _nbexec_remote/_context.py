"""Where the calling thread runs: inside a task body or not, on which Dask worker, on a
cancelled key. Per-thread state lives on the Thread object (attributes ``_nbexec_*``)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from ._exits import contain

# Thread attributes: how many task bodies this thread is inside; whether its current attempt is
# the last one (only a last attempt may be failed at once by the timeout).
_DEPTH_ATTR = "_nbexec_depth"
_FINAL_ATTR = "_nbexec_final_attempt"
# What fails the thread's task at once when its last attempt runs past its timeout (its pool's).
_ON_TIMEOUT_ATTR = "_nbexec_on_timeout"


def enter_task_thread(
    thread: threading.Thread, on_timeout: Callable[[BaseException], None] | None = None
) -> None:
    """``thread`` runs only task bodies from now on (a pool's worker, a process-pool child's main
    thread): ``in_task_body`` is true there. ``on_timeout(error)``, if given, fails its task at
    once when the task's last attempt runs past its timeout (the thread may be blocked in C)."""
    setattr(thread, _DEPTH_ATTR, 1)
    if on_timeout is not None:
        setattr(thread, _ON_TIMEOUT_ATTR, on_timeout)


def in_task_body() -> bool:
    """True while this thread executes a task's own code (nested task calls are plain calls)."""
    return getattr(threading.current_thread(), _DEPTH_ATTR, 0) > 0


def call_in_task_body(fn: Callable, args: tuple, kwargs: dict) -> Any:
    """``fn(*args, **kwargs)`` with this thread counted as inside a task body (see ``in_task_body``).

    A BaseException the task raises itself comes out as ``TaskExit`` (see ``contain``).
    """
    thread = threading.current_thread()
    setattr(thread, _DEPTH_ATTR, getattr(thread, _DEPTH_ATTR, 0) + 1)
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        failure = contain(exc)
        if failure is exc:
            raise
        raise failure from exc
    finally:
        setattr(thread, _DEPTH_ATTR, getattr(thread, _DEPTH_ATTR) - 1)


def where_of(thread: threading.Thread) -> str:
    """Where ``thread`` runs tasks: ``pid N`` (main thread), ``pid N <thread name>``, or the Dask
    worker's address; cached on the thread."""
    where = getattr(thread, "_nbexec_where", None)
    if where is None:
        where = (
            f"pid {os.getpid()}"
            if thread is threading.main_thread()
            else f"pid {os.getpid()} {thread.name}"
        )
        worker = _worker_or_none()
        if worker is not None:
            where = worker.address
        thread._nbexec_where = where  # type: ignore[attr-defined]
    return where


def _key_cancelled() -> bool:
    """Whether this thread runs a Dask task whose key was cancelled (an attempt the kernel
    stopped after its timeout and submitted again: this one must not retry by itself)."""
    worker = _worker_or_none()
    if worker is None:
        return False
    try:
        key = worker.active_threads.get(threading.get_ident())
        ts = worker.state.tasks.get(key) if key is not None else None
    except Exception:  # noqa: BLE001 - distributed changed: retry as usual
        return False
    return ts is not None and ts.state == "cancelled"


def _worker_or_none() -> Any:
    """The Dask worker running this thread's task, or None (also when distributed is not loaded)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.get_worker()
    except ValueError:
        return None
