"""Code that runs on Dask workers and travels there by value (cloudpickle).

This module imports only the standard library, dask and distributed, so workers need nothing of
nbexec. ``DaskExecutor`` registers it with ``cloudpickle.register_pickle_by_value``. It is also a
worker preload file (``dask_setup``) for clusters nbexec creates: worker processes ignore SIGINT,
because Jupyter's interrupt signals the kernel's whole process group.

Worker-local state lives on the ``Worker`` object (attribute ``_nbexec_stopped``), not in module
globals: a by-value module has no single identity on the worker.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import operator
import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

import distributed

_STOPPED_ATTR = "_nbexec_stopped"


class TaskNotStarted(Exception):
    """The executor stopped before this task started, so it did not run."""


class TaskInterrupted(Exception):
    """The task was interrupted by ``DaskExecutor.interrupt`` or by leaving ``start()``."""


def _worker_or_none() -> Any:
    try:
        return distributed.get_worker()
    except ValueError:
        return None


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


def _async_raise(threads: dict[int, Any]) -> int:
    count = 0
    for ident in threads:
        done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(TaskInterrupted)
        )
        count += int(done == 1)
    return count


def worker_has_nbexec(dask_worker: Any = None) -> bool:
    """Whether ``import nbexec`` works on this worker (tests use it to prove workers lack nbexec)."""
    try:
        __import__("nbexec")
    except ImportError:
        return False
    return True


class ByValue:
    """Wraps ``obj`` so that any pickler (distributed tries plain ``pickle`` first) sends it by value.

    Pickles as ``pickle.loads(cloudpickle.dumps(obj))``: the worker needs only the stdlib to load
    it. ``data`` may hold those bytes already (for objects pickled many times).
    """

    __slots__ = ("obj", "data")

    def __init__(self, obj: Any, data: bytes | None = None):
        self.obj = obj
        self.data = data

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.obj(*args, **kwargs)

    def __reduce__(self) -> tuple:
        data = self.data
        if data is None:  # pickling happens on the client, where nbexec is installed
            from nbexec.executors._pickling import dumps

            data = dumps(self.obj, protocol=pickle.HIGHEST_PROTOCOL)
        return (pickle.loads, (data,))


_BYTES: dict[str, bytes] = {}


def _shipped(fn: Callable) -> ByValue:
    """``ByValue(fn)`` for a function of this module, its bytes computed once per process."""
    data = _BYTES.get(fn.__name__)
    if data is None:
        from nbexec.executors._pickling import dumps

        data = _BYTES[fn.__name__] = dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)
    return ByValue(fn, data)


def _new_emitter(topic: str, pid: int) -> Emitter:
    emitter = Emitter(topic)
    emitter._pid = pid
    return emitter


class Emitter:
    """Picklable ``emit(key, event, info)`` that logs ``[[key, event, info], ...]`` to a Dask topic.

    On a worker, events are batched per worker (one ``log_event`` per ~20 ms, so the scheduler
    handles one message per batch, not per event), in order; elsewhere it calls the local
    callback when it is in the process that made it, else the current client's ``log_event``.
    """

    __slots__ = ("topic", "_local", "_pid")

    def __init__(self, topic: str, local: Callable[[str, str, dict], None] | None = None):
        self.topic = topic
        self._local = local
        self._pid = os.getpid()

    def __reduce__(self) -> tuple:
        # Rebuilt by a by-value factory, so a worker without nbexec can load it from any pickler.
        return (operator.methodcaller("__call__", self.topic, self._pid), (_shipped(_new_emitter),))

    def __call__(self, key: str, event: str, info: dict | None = None) -> None:
        msg = [key, event, info or {}]
        worker = _worker_or_none()
        if worker is not None:
            _buffer_event(worker, self.topic, msg)
        elif self._local is not None and os.getpid() == self._pid:
            self._local(key, event, info or {})
        else:
            distributed.get_client().log_event(self.topic, [msg])


_FLUSH_DELAY = 0.02  # seconds: events from one worker reach the scheduler in batches


def _buffer_event(worker: Any, topic: str, msg: list) -> None:
    """Queue ``msg``; the first event of a batch schedules one ``log_event`` for the whole batch."""
    buffers = worker.__dict__.setdefault("_nbexec_events", {})
    lock, pending = buffers.setdefault(topic, (threading.Lock(), []))
    with lock:
        pending.append(msg)
        first = len(pending) == 1
    if first:

        def flush() -> None:
            with lock:
                batch = pending[:]
                pending.clear()
            if batch:
                worker.log_event(topic, batch)

        worker.loop.add_callback(worker.loop.call_later, _FLUSH_DELAY, flush)


def dask_setup(worker: Any) -> None:
    """Worker preload: a worker process started by a nanny ignores SIGINT (never the kernel)."""
    if (
        threading.current_thread() is threading.main_thread()
        and multiprocessing.parent_process() is not None
    ):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _new_map_call(token: str | None, fn: Callable) -> MapCall:
    return MapCall(token, fn)


class MapCall:
    """``fn(*args)`` behind the stop-flag check, as one picklable callable for ``client.map``."""

    __slots__ = ("token", "fn")

    def __init__(self, token: str | None, fn: Callable):
        self.token = token
        self.fn = fn

    def __reduce__(self) -> tuple:
        return (
            operator.methodcaller("__call__", self.token, ByValue(self.fn)),
            (_shipped(_new_map_call),),
        )

    def __call__(self, *args: Any) -> Any:
        return run_task(self.token, self.fn, args, {})
