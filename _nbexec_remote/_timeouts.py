"""Task timeouts: a timer signal in a main thread whose SIGALRM is free, elsewhere one watchdog
thread per process that raises ``TaskTimeout`` in threads past their deadline."""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from ._context import _FINAL_ATTR, _ON_TIMEOUT_ATTR
from ._exits import TaskTimeout
from ._output import _SINK_ATTR, OutputBuffer


def call_with_timeout(fn: Callable, args: tuple, kwargs: dict, timeout: float) -> Any:
    """``fn(*args, **kwargs)``, stopped with ``TimeoutError`` once it ran ``timeout`` seconds.

    In a main thread whose SIGALRM is free (process-pool children, the kernel) a timer signal
    stops it, even inside ``time.sleep``; elsewhere (pool threads, Dask worker threads) the
    watchdog raises in the thread at its next Python line.
    """
    thread = threading.current_thread()
    alarm = (
        thread is threading.main_thread()
        and hasattr(signal, "setitimer")
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    )
    entry = None
    previous = None
    try:
        try:
            if alarm:
                previous = signal.signal(signal.SIGALRM, _on_alarm)
                signal.setitimer(signal.ITIMER_REAL, timeout)
            else:
                entry = _watchdog().arm(thread.ident, timeout)
            return fn(*args, **kwargs)
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous or signal.SIG_DFL)
            elif entry is not None:
                _watchdog().disarm(entry)
    except TaskTimeout:
        raise TimeoutError(f"the task ran longer than its timeout of {timeout:g} s") from None


def call_with_timeout_of(fn: Callable, timeout: float, *args: Any, **kwargs: Any) -> Any:
    """``call_with_timeout`` with the function and timeout first (for ``functools.partial``)."""
    return call_with_timeout(fn, args, kwargs, timeout)


def _on_alarm(signum: int, frame: Any) -> None:
    raise TaskTimeout()


class _Watchdog:
    """One daemon thread per process that raises ``TaskTimeout`` in threads past their deadline."""

    def __init__(self) -> None:
        import heapq
        import itertools

        self._heap: list = []
        self._push, self._pop = heapq.heappush, heapq.heappop
        self._seq = itertools.count()
        self._cond = threading.Condition()
        threading.Thread(target=self._loop, name="nbexec-timeouts", daemon=True).start()

    def arm(self, ident: int | None, timeout: float) -> list:
        thread = threading.current_thread()
        entry = [time.monotonic() + timeout, next(self._seq), ident, "armed", thread, timeout]
        with self._cond:
            self._push(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    def disarm(self, entry: list) -> None:
        with self._cond:
            fired = entry[3] == "fired"
            entry[3] = "done"
        if fired:  # drop the exception if it has not landed yet
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(entry[2]), None)

    def _loop(self) -> None:
        cond, heap = self._cond, self._heap
        while True:
            with cond:
                while heap and heap[0][3] == "done":
                    self._pop(heap)
                if not heap:
                    cond.wait()
                    continue
                delay = heap[0][0] - time.monotonic()
                if delay > 0:
                    cond.wait(delay)
                    continue
                entry = self._pop(heap)
                entry[3] = "fired"
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(entry[2]), ctypes.py_object(TaskTimeout)
                )
            _on_timeout(entry[4], entry[5])
            entry[4] = None


_WATCHDOG: _Watchdog | None = None
_WATCHDOG_LOCK = threading.Lock()


def _on_timeout(thread: threading.Thread, timeout: float) -> None:
    """A thread's pool may fail its task at once (``enter_task_thread``'s hook: the thread may be
    blocked in C, where the exception waits until the call returns); not while retries remain."""
    hook = getattr(thread, _ON_TIMEOUT_ATTR, None)
    if hook is None or not getattr(thread, _FINAL_ATTR, True):
        return
    error = TimeoutError(f"the task ran longer than its timeout of {timeout:g} s")
    sink = getattr(thread, _SINK_ATTR, None)
    try:
        if isinstance(sink, OutputBuffer) and sink.parts:
            error._nbexec_output = sink.text()  # type: ignore[attr-defined]
        hook(error)
    except Exception:  # noqa: BLE001 - the watchdog thread must keep running
        pass


def _watchdog() -> _Watchdog:
    global _WATCHDOG
    if _WATCHDOG is None:
        with _WATCHDOG_LOCK:
            if _WATCHDOG is None:
                _WATCHDOG = _Watchdog()
    return _WATCHDOG
