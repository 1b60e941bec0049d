"""A small thread pool whose running tasks can be interrupted (CPython async exceptions).

``InterruptiblePool`` is a ``concurrent.futures.Executor`` (so ``dask.threaded.get(..., pool=...)``
can use it) with one extra: ``interrupt(futures)`` cancels the pending ones and raises
``TaskInterrupted`` inside the threads running the others. A thread blocked in C (``time.sleep``)
gets the exception as soon as it returns to Python, so the task runs no further line; the pool
retires that thread (it ends once its call returns) and starts a replacement at once, so the next
work has full capacity. A task timeout (``_nbexec_remote``'s watchdog) does the same for a
thread past its task's deadline: the task fails at once with ``TimeoutError``. Threads start as
work needs them, up to ``max_workers``.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED
from functools import partial
from queue import SimpleQueue
from typing import Any

from ..runtime._taskcall import TaskInterrupted, contain, enter_task_thread
from ._slimfuture import SlimFuture

__all__ = ["InterruptiblePool", "TaskInterrupted", "force_cancel"]


def force_cancel(future: Any) -> bool:
    """Mark ``future`` cancelled even if it is running; False if it had already finished."""
    if type(future) is not Future and isinstance(future, SlimFuture):
        return future.force_cancel()
    if future.cancel():
        return True
    with future._condition:
        if future._state in (FINISHED, CANCELLED_AND_NOTIFIED):
            return False
        future._state = CANCELLED_AND_NOTIFIED
        future._condition.notify_all()
    # Future._invoke_callbacks is CPython's private method, absent from typeshed.
    future._invoke_callbacks()  # type: ignore[union-attr]
    return True


def _finish(future: Future, value: Any = None, exc: BaseException | None = None) -> None:
    """Set a result or exception unless the future was cancelled or finished meanwhile."""
    try:
        if exc is None:
            future.set_result(value)
        else:
            future.set_exception(exc)
    except Exception:  # InvalidStateError: cancelled/interrupted already
        pass


def _async_raise(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )


def _clear_async(thread_id: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


class InterruptiblePool(Executor):
    """Up to ``max_workers`` daemon threads (started on demand) running submitted calls in FIFO order."""

    def __init__(self, max_workers: int, name: str = "nbexec-thread") -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
        self._max_workers = max_workers
        self._name = name
        self._queue: SimpleQueue = SimpleQueue()
        self._running: dict[int, Future] = {}  # thread ident -> future running there
        self._worker_locks: dict[int, threading.Lock] = {}
        self._shutdown = False
        self._threads: list[threading.Thread] = []  # live, not retired
        # Threads start as work needs them: while fewer than max_workers run, each submit counts
        # the calls not yet finished (``_done`` has one cell per thread, written by it alone).
        self._grow_lock = threading.Lock()
        self._full = False
        self._submitted = self._dropped = 0
        self._done: list[int] = []
        self._retired: set[int] = set()
        self._nthreads = 0

    def _start_thread(self) -> None:
        """Under ``_grow_lock``: start one more worker thread."""
        slot = len(self._done)
        self._done.append(0)
        t = threading.Thread(
            target=self._worker, args=(slot,), name=f"{self._name}-{slot}", daemon=True
        )
        try:
            t.start()
        except RuntimeError as exc:  # "can't start new thread"
            self._done.pop()
            if not self._threads:
                raise RuntimeError(
                    f"cannot start a worker thread: the system refused ({exc}); ask for fewer "
                    "workers"
                ) from exc
            self._full = True  # serve with the threads that did start
            return
        self._threads.append(t)
        self._full = len(self._threads) >= self._max_workers

    def _grow(self) -> None:
        with self._grow_lock:
            self._submitted += 1
            if self._full or self._shutdown:
                return
            outstanding = self._submitted - self._dropped - sum(self._done)
            if outstanding > len(self._threads):
                self._start_thread()

    @property
    def thread_count(self) -> int:
        """Worker threads started and not retired."""
        return len(self._threads)

    # --- concurrent.futures.Executor ------------------------------------------------------

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)``; returns a new ``Future``."""
        future: Future = Future()
        self.submit_to(future, fn, args, kwargs)
        return future

    def submit_to(self, future: Future, fn: Callable, args: tuple, kwargs: dict) -> None:
        """Schedule ``fn(*args, **kwargs)`` to complete the given (pending) ``future``."""
        if self._shutdown:
            raise RuntimeError("cannot submit to a pool that was shut down")
        self._queue.put((future, fn, args, kwargs))
        if not self._full:
            self._grow()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the threads after the queued work (or cancel it with ``cancel_futures``)."""
        if cancel_futures:
            self.cancel_pending()
        with self._grow_lock:
            self._shutdown = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:  # threads retired by an interrupt are not waited for: they may be stuck in C
            me = threading.current_thread()
            for t in threads:
                if t is not me:
                    t.join()

    # --- interrupts ------------------------------------------------------------------------

    def cancel_pending(self) -> None:
        """Cancel every queued call that has not started."""
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except Exception:
                break
        dropped = 0
        for item in items:
            if item is None:
                self._queue.put(None)
            else:
                item[0].cancel()
                dropped += 1
        with self._grow_lock:
            self._dropped += dropped

    def interrupt(self, futures: Iterable[Future]) -> None:
        """Cancel ``futures`` that have not started; raise ``TaskInterrupted`` in threads running the others."""
        for f in futures:
            if f.cancel():
                continue  # pending: the worker will skip it
            # Claimed: mark it cancelled first. A worker that registers it after the look-up
            # below sees it done and does not call it; one registered before is found here.
            if not force_cancel(f):
                continue  # it had already finished
            for ident, running in list(self._running.items()):
                if running is f:
                    # The worker leaves the task under its own lock: the exception lands in
                    # the task or, at worst, in the guarded gap after it (then it is cleared).
                    with self._worker_locks[ident]:
                        if self._running.get(ident) is f:
                            del self._running[ident]
                            _async_raise(ident, TaskInterrupted)
                            self._retire(ident)
                    break

    def _retire(self, ident: int) -> None:
        """The thread ``ident`` may stay blocked in C: take it out and start a replacement, so
        the pool keeps its full capacity; the thread ends when its call returns."""
        with self._grow_lock:
            self._retired.add(ident)
            self._threads = [t for t in self._threads if t.ident != ident]
            self._dropped += 1  # its call will never count as done
            if not self._shutdown and self._full:
                self._start_thread()
            elif not self._shutdown:
                self._full = False

    def _timed_out(self, ident: int, error: BaseException) -> None:
        """The task running in thread ``ident`` passed its timeout (the watchdog already raised
        in the thread): fail its future with ``error`` now and retire the thread, as interrupts do."""
        future = self._running.get(ident)
        lock = self._worker_locks.get(ident)
        if future is None or lock is None:
            return
        with lock:
            if self._running.get(ident) is not future:
                return  # it finished meanwhile
            del self._running[ident]
            self._retire(ident)
        _finish(future, exc=error)

    def interrupt_all(self) -> None:
        """Interrupt every queued and running call."""
        self.cancel_pending()
        self.interrupt(self.running_futures())

    def running_futures(self) -> list[Future]:
        """Futures whose calls are executing now."""
        return list(self._running.values())

    # --- worker ----------------------------------------------------------------------------

    def _worker(self, slot: int) -> None:
        ident = threading.get_ident()
        self._retired.discard(ident)  # idents are reused: a retired thread may have had this one
        # One lock per worker, shared only with interrupt(): a lock shared by all workers let a
        # thread lose the GIL while holding it, and the others then queued on it for every task.
        lock = self._worker_locks[ident] = threading.Lock()
        # Everything these threads run is inside a task (calling a task there is a plain call);
        # a task timeout fails the task here at once and retires this thread (it may be in C).
        enter_task_thread(threading.current_thread(), partial(self._timed_out, ident))
        while True:
            try:
                if self._work(ident, lock, slot):
                    return
            except TaskInterrupted:
                # An interrupt that arrived just after the task returned: the task is over and
                # its future was cancelled by interrupt().
                pass
            if ident in self._retired:
                return

    def _work(self, ident: int, lock: threading.Lock, slot: int) -> bool:
        get, running, done, retired = self._queue.get, self._running, self._done, self._retired
        while True:
            if ident in retired:
                return True  # interrupted: a replacement serves the queue now
            item = get()
            if item is None:
                return True
            future, fn, args, kwargs = item
            del item
            if not future.set_running_or_notify_cancel():
                done[slot] += 1
                continue
            running[ident] = future  # one dict store: atomic; interrupt() reads a copy
            if future.done():  # interrupted between the claim and the line above
                _leave(running, ident, lock)
                if ident not in retired:
                    done[slot] += 1
                continue
            try:
                result = fn(*args, **kwargs)
            except TaskInterrupted:
                _leave(running, ident, lock)
                _clear_async(ident)
                force_cancel(future)
            except BaseException as exc:
                _leave(running, ident, lock)
                failure = contain(exc)  # the task's own SystemExit etc. fails only the task
                if failure is not exc:
                    failure.__traceback__ = exc.__traceback__
                _finish(future, exc=failure)
                del failure
                del exc
            else:
                _leave(running, ident, lock)
                _finish(future, result)
                del result
            del future, fn, args, kwargs
            if ident not in retired:
                done[slot] += 1


def _leave(running: dict, ident: int, lock: threading.Lock) -> None:
    """Unregister this worker's task; if interrupt() took it first, drop the exception it sent
    (it lands in the task or, at worst, here, where it is cleared)."""
    with lock:
        interrupted = running.pop(ident, None) is None
    if interrupted:
        _clear_async(ident)


def cancelled_error(key: str) -> CancelledError:
    """The error a dependent gets when the task ``key`` it needs was cancelled."""
    return CancelledError(f"task {key!r} was cancelled")
