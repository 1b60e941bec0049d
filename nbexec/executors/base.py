"""The executor interface (Prefect 1's ``Executor``) and nbexec's notebook-agnostic extensions.

The seed's interface is ``start()``, ``submit()`` and ``wait()``. nbexec's run layer also uses four
extensions that every executor provides (the defaults here suit executors that run each call at
once in the calling thread, so a subclass that implements only the seed's interface still works):

- ``submit_future()`` returns a future with the ``concurrent.futures.Future`` API
  (``done``, ``result``, ``exception``, ``cancel``, ``add_done_callback``).
- ``event_channel(callback)`` returns a picklable ``emit(key, event, info)`` that code running inside
  a task, wherever it runs, uses to report back to ``callback`` in this process.
- ``interrupt(futures)`` stops work after a KeyboardInterrupt: pending work never starts; running
  work is stopped where this executor owns the workers and released otherwise.
- ``describe()`` says what the executor runs on, for status lines.
"""

from __future__ import annotations

import functools
import itertools
import logging
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Executor", "EventChannel", "ExecutorInfo", "NotStartedError", "make_task_key", "map_structure",
]  # fmt: skip


class NotStartedError(RuntimeError, ValueError):
    """The executor is used outside ``start()``: a RuntimeError, as the standard library raises for
    lifecycle errors, and a ValueError, which is what Prefect 1's executors raised."""


EventCallback = Callable[[str, str, dict], None]


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


def map_structure(fn: Callable[[Any], Any], obj: Any, is_leaf: Callable[[Any], bool]) -> Any:
    """Return ``obj`` with every leaf inside nested lists, tuples, sets and dicts replaced by ``fn(leaf)``.

    Containers without leaves are returned as they are (same object); containers with leaves are
    rebuilt with the same type (namedtuples included).
    """
    if is_leaf(obj):
        return fn(obj)
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [map_structure(fn, x, is_leaf) for x in obj]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*items)
        return type(obj)(items)
    if isinstance(obj, dict):
        items = {k: map_structure(fn, v, is_leaf) for k, v in obj.items()}
        if all(items[k] is v for k, v in obj.items()):
            return obj
        out = type(obj)() if type(obj) is not dict else {}
        out.update(items)
        return out
    return obj


def iter_leaves(obj: Any, is_leaf: Callable[[Any], bool]) -> Iterator[Any]:
    """Yield every leaf inside nested lists, tuples, sets and dicts."""
    if is_leaf(obj):
        yield obj
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for x in obj:
            yield from iter_leaves(x, is_leaf)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from iter_leaves(x, is_leaf)


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

    def describe(self) -> ExecutorInfo:
        """What this executor runs on."""
        return ExecutorInfo(mode=self.mode)


Executor.start = _observed(Executor.start)  # type: ignore[method-assign]
