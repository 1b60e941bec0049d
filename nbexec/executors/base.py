"""The executor interface (Prefect 1's ``Executor``) and nbexec's notebook-agnostic extensions.

Prefect 1's interface is ``start()``, ``submit()`` and ``wait()``. A run (``nbexec.core.run``) calls
the hooks below and nothing else of an executor; each has a default, so a subclass that implements
only Prefect 1's interface works (its calls run through ``submit`` and ``wait``):

- ``started`` says whether a ``start()`` block is active; a run starts an executor that is not
  started for its duration. The default observes ``start()``.
- ``intake`` says how a run hands over its tasks, one of:

  - ``FUTURES`` (default): ``submit_future()`` per task, ``map()`` for a map of plain arguments;
    the run follows each returned future with ``on_done()``.
  - ``INLINE``: the run calls each task itself, at once, in the calling thread (no future).
  - ``POOL``: the run makes each task's future (a ``pools._slimfuture.SlimFuture`` that reports to
    the run's records) and hands it over with ``submit_to()``; the pool thread that runs the call
    claims it right before calling, which is when the task is "running".
  - ``POOL_PROCESS``: as ``POOL``, but the future is claimed at dispatch and the process that runs
    the call reports "running" (``set_started``) and when and where it ran (``set_ran``).

- ``submit_future()`` returns a future with the ``concurrent.futures.Future`` API
  (``done``, ``result``, ``exception``, ``cancel``, ``add_done_callback``); the default runs the
  call at once through ``submit`` and ``wait``.
- ``map(fn, *iterables, extra_context=)`` submits many calls at once (default: ``submit_future``
  per element); ``gather(futures)`` fetches many results (default: each future's ``result()``).
- ``submit_to(future, fn, args, kwargs, deps)``: the pool intakes' hand-over (no default).
- ``on_done(future, callback)`` follows a future (default: ``add_done_callback``).
- ``lazy`` says that work runs only once waited on (the run then waits through ``wait``, and
  a future waited on alone through ``run_until``).
- ``watch_timeouts`` says that the kernel must enforce task timeouts too, because a worker
  thread blocked in C cannot be stopped by the task's own timer (default False).
- ``event_channel(callback)`` returns a picklable ``emit(key, event, info)`` that code running inside
  a task, wherever it runs, uses to report back to ``callback`` in this process.
- ``watch_workers(callback)`` reports workers coming and going (default: none to watch).
- ``interrupt(futures)`` stops work after a KeyboardInterrupt: pending work never starts; running
  work is stopped where this executor owns the workers and released otherwise.
- ``future_status(future)`` says how a future ended without waiting (default: the
  ``concurrent.futures`` API); ``note_stop_reason(keys, why)`` says why ``interrupt`` will stop
  tasks (default: no record).
- ``describe()`` says what the executor runs on, for status lines.
- Dask collections computed inside a run: ``dask_get(dsk, keys, **kwargs)`` runs their graph
  (dask's scheduler ``get`` protocol; default: dask's synchronous scheduler in this thread);
  ``dask_keeps_results`` says it returns futures whose data stays where the executor runs
  (default False); ``count_client_calls(listener)`` reports graphs that code gives the
  executor's own Dask client (default: dask's default Client, the user's, if any); ``dask_client`` is that
  client (default None), ``dask_task_states(keys)`` asks its scheduler, ``user_client`` says the user made it, ``as_dask_default()`` makes the
  executor dask's default scheduler for plain cells (default: a no-op).
- ``task_key(future)`` names a future as its scheduler shows it (default: its ``key``);
  ``call_stack(key, timeout)`` says where a running task is (default: unknown).
"""

from __future__ import annotations

import functools
import itertools
import logging
import sys
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..pools._stdwait import std_future_status
from ._structure import iter_leaves, map_structure

__all__ = [
    "Executor", "EventChannel", "ExecutorInfo", "NotStartedError", "make_task_key", "map_structure",
    "iter_leaves",    "FUTURES", "INLINE", "POOL", "POOL_PROCESS",
]  # fmt: skip

#: How a run hands its tasks to an executor (``Executor.intake``; see the module docstring).
FUTURES = "futures"
INLINE = "inline"
POOL = "pool"
POOL_PROCESS = "pool-process"


class NotStartedError(RuntimeError, ValueError):
    """The executor is used outside ``start()``: a RuntimeError, as the standard library raises for
    lifecycle errors, and a ValueError, which is what Prefect 1's executors raised."""


EventCallback = Callable[[Any, str, dict], None]


@dataclass
class ExecutorInfo:
    """What an executor runs on; ``None`` where it does not apply or is not known yet."""

    mode: str
    workers: int | None = None
    threads: int | None = None
    memory: int | None = None
    dashboard_link: str | None = None
    address: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EventChannel:
    """A way back from running task code to a callback in this process.

    ``emit`` is picklable for executors whose tasks run elsewhere; calling it where the task runs
    delivers ``(key, event, info)`` to the callback here, in order per task, on some thread.
    ``info`` holds only str, int, float, bool and None values.
    """

    def __init__(
        self, emit: Callable[[str, str, dict], None], close: Callable[[], None] | None = None
    ):
        self.emit = emit
        self._close = close

    def close(self) -> None:
        """Stop delivering events; idempotent."""
        close, self._close = self._close, None
        if close is not None:
            close()


_KEY_PREFIX = uuid.uuid4().hex[:16]
_key_counter = itertools.count()


def unique_token() -> str:
    """32 hex digits, unique across processes (a random per-process prefix and a counter)."""
    return f"{_KEY_PREFIX}{next(_key_counter):016x}"


def make_task_key(extra_context: dict | None) -> str | None:
    """The key for a task, named as Prefect 1 named them: ``name-index-<32 hex>`` or ``name-<32 hex>``.

    The token plays the role of Prefect's ``uuid4().hex`` at a fraction of its cost.
    """
    if not extra_context:
        return None
    name = extra_context.get("task_name") or ""
    if not name:
        return None
    index = extra_context.get("task_index")
    if index is not None:
        return f"{name}-{index}-{unique_token()}"
    return f"{name}-{unique_token()}"


def _no_op() -> None:
    pass


def _is_concurrent_future(x: Any) -> bool:
    return isinstance(x, Future)


#: How many ``start()`` blocks of each executor are active (the default ``started`` reads it).
_starts: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _observed(start: Callable[..., Any]) -> Callable[..., Any]:
    """``start`` (a context-manager method) counted in ``_starts`` while its block is active."""

    @functools.wraps(start)
    @contextmanager
    def observed_start(self: Any, *args: Any, **kwargs: Any) -> Iterator[None]:
        with start(self, *args, **kwargs):
            _starts[self] = _starts.get(self, 0) + 1
            try:
                yield
            finally:
                left = _starts.get(self, 1) - 1
                if left:
                    _starts[self] = left
                else:
                    _starts.pop(self, None)

    observed_start.__nbexec_observed__ = True  # type: ignore[attr-defined]
    return observed_start


class Executor:
    """Base class of all executors: runs functions, possibly elsewhere, and resolves their futures."""

    #: The mode name a person would type for this executor ("local", "threads", "dask", ...).
    mode: str = "custom"

    def __init__(self) -> None:
        self.logger = logging.getLogger(f"nbexec.{type(self).__name__}")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass's own start() is observed too, so the default ``started`` tells the truth
        # for executors written against Prefect's API only.
        super().__init_subclass__(**kwargs)
        start = cls.__dict__.get("start")
        if callable(start) and not getattr(start, "__nbexec_observed__", False):
            cls.start = _observed(start)  # type: ignore[method-assign]

    def __repr__(self) -> str:
        return f"<Executor: {type(self).__name__}>"

    @contextmanager
    def start(self) -> Iterator[None]:
        """Context manager for initializing execution; work may be submitted inside it."""
        yield

    def submit(
        self, fn: Callable, /, *args: Any, extra_context: dict | None = None, **kwargs: Any
    ) -> Any:
        """Submit ``fn(*args, **kwargs)``; futures of this executor inside ``args`` are dependencies."""
        raise NotImplementedError()

    def wait(self, futures: Any) -> Any:
        """Resolve every future inside ``futures`` (nested lists, tuples, dicts); plain values pass through."""
        raise NotImplementedError()

    # --- nbexec extensions -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether a ``start()`` block of this executor is active. A run given an executor that is
        not started starts it for its duration. The default observes ``start()`` (this class's
        and any subclass's); executors that know their own state override it."""
        return _starts.get(self, 0) > 0

    @property
    def lazy(self) -> bool:
        """Whether submitted work runs only once waited on (``wait`` or a future's ``result``).

        A run on a lazy executor runs the queued work in its own thread when it waits. Default False.
        """
        return False

    @property
    def intake(self) -> str:
        """How a run hands over its tasks: ``FUTURES`` (default), ``INLINE``, ``POOL`` or
        ``POOL_PROCESS`` (see the module docstring)."""
        return FUTURES

    @property
    def watch_timeouts(self) -> bool:
        """Whether the kernel must enforce task timeouts too (worker threads blocked in C that
        the task's own timer cannot stop). Default False."""
        return False

    #: This executor's futures (``dask_get``'s and ``submit_future``'s) reference data that stays
    #: where it runs (Dask's workers): pass them on rather than their values.
    dask_keeps_results: bool = False

    @property
    def dask_client(self) -> Any:
        """The ``distributed.Client`` this executor runs Dask work on while started, or None
        (the default): its graphs, keys and scheduler are the run layer's to follow."""
        return None

    def dask_task_states(self, keys: list) -> dict:
        """``{key: state}`` of ``keys`` on ``dask_client``'s scheduler (those it still knows);
        the default has no scheduler: {}."""
        return {}

    @property
    def user_client(self) -> bool:
        """Whether ``dask_client`` is a Client the user made (nbexec never closes it)."""
        return False

    @contextmanager
    def as_dask_default(self) -> Iterator[None]:
        """Make this executor dask's default scheduler for code outside runs (plain cells) until
        the block ends, as ``Client()`` does. The default leaves dask's scheduler alone."""
        yield

    def task_key(self, future: Any) -> str | None:
        """The key naming ``future`` (one of this executor's) where its scheduler shows it, or
        None. The default is the future's ``key`` attribute, if any."""
        key = getattr(future, "key", None)
        return None if key is None else str(key)

    def call_stack(self, key: str, timeout: float) -> tuple[str | None, list[str]]:
        """``(worker, frames)``: where the task ``key`` runs and its call stack (outermost frame
        first), waiting at most ``timeout`` seconds; ``(None, [])`` when unknown (the default)."""
        return None, []

    def dask_get(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        """Run a dask graph (dask's scheduler ``get`` protocol, ``callbacks=`` accepted). The
        default is dask's synchronous scheduler, in the calling thread."""
        from dask.local import get_sync

        return get_sync(dsk, keys, **kwargs)

    def count_client_calls(self, listener: Callable[..., None]) -> Callable[[], None] | None:
        """Report the graphs that code gives this executor's own Dask client to ``listener``
        until the returned function is called. The default reports those given to dask's
        default Client (the user's ``Client()``), if there is one; else it returns None."""
        if "distributed" not in sys.modules:
            return None
        from ._dask_collections import count_default_client_calls

        return count_default_client_calls(listener)

    def run_until(self, future: Any) -> None:
        """A lazy executor runs its queued work in this thread until ``future`` (one of its
        futures) is done. The default waits on it through ``wait``; its outcome stays with it."""
        try:
            self.wait([future])
        except Exception:  # noqa: BLE001 - the future's own error, raised where it is read
            pass

    def watch_workers(self, callback: Callable[[str, str | None, int], None]) -> Callable[[], None]:
        """Call ``callback(op, worker, n_workers)`` on worker events while started; returns a
        function that stops the calls. ``op`` is "now" (once, with the current count), "add" or
        "remove". The default has no workers to watch: it never calls ``callback``."""
        return _no_op

    def submit_future(
        self, fn: Callable, /, *args: Any, extra_context: dict | None = None, **kwargs: Any
    ) -> Any:
        """Like ``submit`` but always returns a future with the ``concurrent.futures.Future`` API.

        Futures returned by earlier ``submit_future`` calls may appear in ``args``/``kwargs`` as
        dependencies. The default runs the call at once through ``submit``.
        """
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            args, kwargs = map_structure(
                lambda f: f.result(), (args, kwargs), _is_concurrent_future
            )
            value = self.submit(fn, *args, extra_context=extra_context, **kwargs)
            value = self.wait(value)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            future.set_exception(exc)
        else:
            future.set_result(value)
        return future

    def map(
        self, fn: Callable, /, *iterables: Iterable, extra_context: dict | None = None
    ) -> list[Any]:
        """``submit_future(fn, *args)`` for each element of the zipped ``iterables``; the element's
        position is its ``task_index``. Executors that can submit many calls at once override it."""
        context = dict(extra_context or {})
        return [
            self.submit_future(fn, *args, extra_context={**context, "task_index": index})
            for index, args in enumerate(zip(*iterables))
        ]

    def gather(self, futures: list[Any]) -> list[Any]:
        """The results of ``futures`` (this executor's), in order; raises the first exception met.
        Executors that fetch many results in one round trip override it."""
        return [f.result() for f in futures]

    def submit_to(
        self, future: Any, fn: Callable, args: tuple, kwargs: dict, deps: list | None = None
    ) -> None:
        """The pool intakes: run ``fn(*args, **kwargs)`` to complete ``future`` (a SlimFuture the
        run made), once the futures in ``deps`` are done; they are replaced by their values in
        ``args``/``kwargs``, and a failed or cancelled one fails or cancels ``future``."""
        raise NotImplementedError(f"{type(self).__name__} has no pool intake")

    def event_channel(self, callback: EventCallback) -> EventChannel:
        """A channel from task code back to ``callback``; the default calls it directly."""
        return EventChannel(callback)

    def on_done(self, future: Any, callback: Callable[[Any], None]) -> None:
        """Call ``callback(future)`` once ``future`` (returned by this executor) is done.

        In any thread; the callback must be quick. The default is ``future.add_done_callback``.
        """
        future.add_done_callback(callback)

    def interrupt(self, futures: Iterable[Any]) -> None:
        """Stop ``futures`` after an interrupt: pending ones never start; running ones stop or are released."""
        for f in futures:
            cancel = getattr(f, "cancel", None)
            if cancel is not None:
                cancel()

    def future_status(self, future: Any) -> str:
        """What became of ``future`` (one of this executor's), as known here without waiting or
        fetching its result: "pending", "finished", "error" or "cancelled". The default asks the
        ``concurrent.futures`` API."""
        return std_future_status(future)

    def note_stop_reason(self, keys: list[str], why: str) -> None:
        """Record why the tasks ``keys`` are about to be stopped (e.g. "timed out"), before
        ``interrupt``, for the executor's own status. The default keeps no record."""

    def describe(self) -> ExecutorInfo:
        """What this executor runs on."""
        return ExecutorInfo(mode=self.mode)


Executor.start = _observed(Executor.start)  # type: ignore[method-assign]
