"""LocalDaskExecutor: threads, processes or the calling thread, with Prefect 1's executor interface.

"threads" and "processes" run EAGERLY: ``submit`` dispatches at once (or as soon as the futures it
depends on are done) to nbexec's own interruptible pools; no ``dask.delayed`` graph is built.
"synchronous" is LAZY: work runs in the calling thread, in submission order, at ``wait()`` or at a
future's ``result()``. Its futures are ``LocalDaskFuture``s (``_local_dask_future``);
``dask_get`` runs dask collections on the same pool (``_local_dask_get``).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

from ..pools._slimfuture import SlimFuture
from ..pools._threadpool import InterruptiblePool, force_cancel
from ..runtime._taskcall import call_in_task_body
from ._local_dask_future import ATOMIC, LocalDaskFuture, find_own, is_future, result_of
from ._local_dask_get import dask_get
from .base import (
    FUTURES,
    POOL,
    POOL_PROCESS,
    EventCallback,
    EventChannel,
    Executor,
    ExecutorInfo,
    NotStartedError,
    make_task_key,
    map_structure,
)

__all__ = ["LocalDaskExecutor", "LocalDaskFuture"]

_SCHEDULERS = {
    "threads": "threads",
    "threading": "threads",
    "processes": "processes",
    "multiprocessing": "processes",
    "sync": "synchronous",
    "synchronous": "synchronous",
    "single-threaded": "synchronous",
}
_MODES = {"threads": "threads", "processes": "processes", "synchronous": "sync"}
_NOT_STARTED = "This executor has not been started; use `with executor.start():`"


class LocalDaskExecutor(Executor):
    """Runs tasks on local threads, processes, or lazily in the calling thread ("synchronous").

    ``scheduler``: "threads"/"threading", "processes"/"multiprocessing", or
    "sync"/"synchronous"/"single-threaded". ``dask_config`` (e.g. ``num_workers=4``) is this
    executor's dask configuration: ``num_workers`` bounds concurrency, and the whole of it is set
    around the dask graphs run by ``dask_get`` and around synchronous work.
    """

    def __init__(self, scheduler: str = "threads", **dask_config: Any) -> None:
        super().__init__()
        name = _SCHEDULERS.get(scheduler.lower()) if isinstance(scheduler, str) else None
        if name is None:
            valid = ", ".join(repr(s) for s in _SCHEDULERS)
            raise ValueError(f"Unknown scheduler {scheduler!r}; expected one of {valid}")
        self.scheduler = name
        self.mode = _MODES[name]
        self.dask_config = dask_config
        workers = dask_config.get("num_workers")
        if workers is None:
            import dask

            workers = dask.config.get("num_workers", None)
        if workers is None:
            workers = os.cpu_count() or 1
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {workers!r}")
        self.num_workers = workers
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._pool: Any = None
        self._started = False
        self._active: set[LocalDaskFuture] = set()  # submitted and not done
        self._queue: deque = deque()  # "synchronous": (future, fn, args, kwargs, deps)
        self._lock = threading.Lock()
        self._local = threading.local()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("_pool", "_started", "_active", "_queue", "_lock", "_local"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return (
            f"<Executor: LocalDaskExecutor scheduler={self.scheduler!r} workers={self.num_workers}>"
        )

    @property
    def started(self) -> bool:
        """Whether ``start()`` is active."""
        return self._started

    @contextmanager
    def start(self) -> Iterator[None]:
        """Create the pool; on exit, unstarted work is cancelled and the pool stops.

        Leaving normally waits for running tasks; leaving by an exception interrupts them.
        """
        if self._started:
            raise RuntimeError("This executor is already started")
        if self.scheduler == "threads":
            self._pool = InterruptiblePool(self.num_workers)
        elif self.scheduler == "processes":
            from ..pools._procpool import ProcPool

            self._pool = ProcPool(self.num_workers)
        self._started = True
        early = False
        try:
            yield
        except BaseException:
            early = True
            raise
        finally:
            self._stop(early)

    def _stop(self, early: bool) -> None:
        self._started = False
        active = list(self._active)
        if early:
            self.interrupt(active)
            if self._pool is not None:
                self._pool.interrupt_all()  # also the work of ``submit_to``
        else:
            for f in active:
                f.cancel()
        queued, self._queue = self._queue, deque()
        for item in queued:
            item[0].cancel()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=not early, cancel_futures=True)
        self._active.clear()

    # --- submission ------------------------------------------------------------------------

    def submit(
        self, fn: Callable, /, *args: Any, extra_context: dict | None = None, **kwargs: Any
    ) -> LocalDaskFuture:
        """Run ``fn(*args, **kwargs)`` once this executor's futures inside the arguments are done."""
        return self.submit_future(fn, *args, extra_context=extra_context, **kwargs)

    def submit_future(
        self, fn: Callable, /, *args: Any, extra_context: dict | None = None, **kwargs: Any
    ) -> LocalDaskFuture:
        """Same as ``submit``: a ``SlimFuture`` with a ``key`` (the ``concurrent.futures.Future``
        API; it works with ``concurrent.futures.wait`` and ``as_completed``)."""
        if not self._started:
            raise NotStartedError(_NOT_STARTED)
        name = getattr(fn, "__name__", None) or type(fn).__name__
        future = LocalDaskFuture(
            self, name, make_task_key(extra_context) if extra_context else None
        )
        deps: list = []
        for a in args:
            if type(a) not in ATOMIC:
                find_own(a, deps, self)
        if kwargs:
            find_own(kwargs, deps, self)
        self._active.add(future)
        future.add_done_callback(self._active.discard)
        self._dispatch(future, fn, args, kwargs, deps)
        return future

    @property
    def lazy(self) -> bool:
        """In "synchronous" mode work runs only once waited on."""
        return self.scheduler == "synchronous"

    @property
    def intake(self) -> str:
        """``POOL`` (threads, sync: the thread that runs a call claims its future) or
        ``POOL_PROCESS``; ``FUTURES`` for a subclass that changes how work is submitted."""
        cls = type(self)
        if cls.submit_to is not LocalDaskExecutor.submit_to or (
            cls.submit_future is not LocalDaskExecutor.submit_future
        ):
            return FUTURES
        return POOL_PROCESS if self.scheduler == "processes" else POOL

    def submit_to(
        self, future: Any, fn: Callable, args: tuple, kwargs: dict, deps: list | None = None
    ) -> None:
        """Run ``fn(*args, **kwargs)`` to complete ``future``, once the futures in ``deps`` are done.

        The pool intake of runs: no key, no scan of the arguments; the futures of ``deps`` (this
        executor's, or SlimFutures given to ``submit_to``) are replaced by their values inside
        ``args`` and ``kwargs``, and a failed or cancelled one fails or cancels ``future``.
        """
        if not self._started:
            raise NotStartedError(_NOT_STARTED)
        self._dispatch(future, fn, args, kwargs, deps)

    def _dispatch(self, future: Any, fn: Callable, args: tuple, kwargs: dict, deps: Any) -> None:
        if self._pool is None:
            self._queue.append((future, fn, args, kwargs, deps))
        elif deps:
            self._after(future, fn, args, kwargs, deps)
        else:
            self._pool.submit_to(future, fn, args, kwargs)

    def _after(self, future: Any, fn: Callable, args: tuple, kwargs: dict, deps: list) -> None:
        """Dispatch once every dependency is done."""
        unique = list({id(d): d for d in deps}.values())
        count = [len(unique)]
        lock = self._lock

        def on_done(_: Any) -> None:
            with lock:
                count[0] -= 1
                if count[0]:
                    return
            self._trampoline((future, fn, args, kwargs, unique))

        for d in unique:
            d.add_done_callback(on_done)

    def _trampoline(self, item: tuple) -> None:
        # Release dependents iteratively: a failure at the root of a long chain must not recurse.
        local = self._local
        if getattr(local, "queue", None) is not None:
            local.queue.append(item)
            return
        local.queue = deque([item])
        try:
            while local.queue:
                self._release(*local.queue.popleft())
        finally:
            local.queue = None

    def _release(self, future: Any, fn: Callable, args: tuple, kwargs: dict, deps: list) -> None:
        if future.done():
            return
        for d in deps:
            if d.cancelled():
                future.cancel()
                return
            exc = d.exception()
            if exc is not None:
                if future.set_running_or_notify_cancel():
                    future.set_exception(exc)
                return
        args, kwargs = map_structure(result_of, (args, kwargs), self._is_own)
        if self._pool is None:
            self._run_here(future, fn, args, kwargs)
        else:
            self._pool.submit_to(future, fn, args, kwargs)

    def _is_own(self, x: Any) -> bool:
        if isinstance(x, LocalDaskFuture):
            return x._executor is self
        return isinstance(x, SlimFuture)

    # --- synchronous -----------------------------------------------------------------------

    def _drain(self, until: Any = None) -> None:
        """Run queued "synchronous" work in this thread, in order, until ``until`` is done."""
        queue = self._queue
        if not queue:
            return
        with self._config():
            while queue and not (until is not None and until.done()):
                future, fn, args, kwargs, deps = queue.popleft()
                if deps:
                    self._release(future, fn, args, kwargs, deps)
                elif not future.done():
                    self._run_here(future, fn, args, kwargs)

    def run_until(self, future: Any) -> None:
        """In "synchronous" mode: run queued work in this thread, in order, until ``future`` is done."""
        self._drain(future)

    def _run_here(self, future: Any, fn: Callable, args: tuple, kwargs: dict) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            value = call_in_task_body(fn, args, kwargs)
        except KeyboardInterrupt:
            force_cancel(future)
            raise
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(value)

    def _config(self) -> Any:
        if not self.dask_config:
            return nullcontext()
        import dask

        return dask.config.set(**self.dask_config)

    # --- waiting and interrupts ------------------------------------------------------------

    def wait(self, futures: Any) -> Any:
        """Resolve every future inside ``futures`` (nested lists, tuples, sets, dicts).

        Plain values pass through; the first exception met is raised. A KeyboardInterrupt while
        waiting interrupts all of this executor's unfinished work, then propagates.
        """
        if self._queue:
            try:
                self._drain()
            except KeyboardInterrupt as exc:
                self._on_keyboard_interrupt(exc, None)
                raise
        return map_structure(result_of, futures, is_future)

    def _on_keyboard_interrupt(self, exc: BaseException, future: SlimFuture | None) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # raised inside a task of ours, not by the user
        if (
            future is not None
            and future.done()
            and not future.cancelled()
            and future._exception is exc
        ):
            return  # the task itself raised KeyboardInterrupt
        self.logger.info("Interrupted: cancelling pending work and stopping running tasks")
        self.interrupt(list(self._active))

    def interrupt(self, futures: Iterable[Any]) -> None:
        """Pending futures never start; running ones are stopped (threads: an async exception that
        lands as soon as the task returns to Python; processes: the child is killed and replaced)."""
        futures = [f for f in futures if is_future(f) and not f.done()]
        for f in futures:
            f.cancel()
        pool = self._pool
        if pool is not None:
            pool.interrupt([f for f in futures if not f.done()])

    # --- extensions ------------------------------------------------------------------------

    def event_channel(self, callback: EventCallback) -> EventChannel:
        """For "processes", a picklable ``emit`` that sends from a child at once; else a direct call."""
        if self.scheduler != "processes":
            return EventChannel(callback)
        from ..pools import _procworker

        channel = uuid.uuid4().hex
        _procworker.CHANNELS[channel] = callback

        def close() -> None:
            _procworker.CHANNELS.pop(channel, None)

        return EventChannel(_procworker.ProcEmit(channel), close)

    def describe(self) -> ExecutorInfo:
        """Mode, worker count (1 for sync) and total task threads."""
        workers = 1 if self.scheduler == "synchronous" else self.num_workers
        return ExecutorInfo(mode=self.mode, workers=workers, threads=workers)

    def dask_get(self, dsk: Mapping, keys: Any, **kwargs: Any) -> Any:
        """A dask scheduler ``get`` running graphs on this executor's pool.

        Use as ``dask.config.set(scheduler=executor.dask_get)`` or ``x.compute(scheduler=...)``
        while started; accepts dask's ``callbacks=`` and other ``get_async`` keywords.
        """
        if not self._started:
            raise NotStartedError(_NOT_STARTED)
        return dask_get(self.scheduler, self._pool, self._config(), dsk, keys, **kwargs)
