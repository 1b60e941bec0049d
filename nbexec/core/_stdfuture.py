"""The ``concurrent.futures.Future`` contract of ``TaskFuture``: ``running``, ``add_done_callback``,
and what ``concurrent.futures.wait``/``as_completed`` read (``_condition``, ``_state``, ``_waiters``).

A task future's state is its row in the run's tracker, so nothing is kept per task until someone
waits on it or adds a callback: then a ``_Watch`` (``pools._stdwait.StdWatch``, as a
``SlimFuture`` has, plus the callbacks) is made and the tracker calls back once the task has
ended (``Tracker.on_end``).
Waiters and callbacks are told once the task's result can be read; callbacks run in the thread that
ended the task, or in a thread of their own if that one runs an event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import TYPE_CHECKING, Any

from ..pools._stdwait import StdWatch
from .snapshot import TERMINAL

__all__ = ["StdFutureContract"]

_make_lock = threading.Lock()
_STD_STATES = {
    "pending": PENDING,
    "running": RUNNING,
    "retrying": RUNNING,
    "success": FINISHED,
    "failed": FINISHED,
    "cancelled": CANCELLED_AND_NOTIFIED,
}


class _Watch(StdWatch):
    __slots__ = ("callbacks",)

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[Callable] = []


class StdFutureContract:
    """Mixin of ``TaskFuture``: the parts of the stdlib future contract it does not have itself.

    The class using it has the slots ``_run``, ``_id`` and ``_efut``, the property ``state`` and
    the methods ``done``, ``cancelled``, ``result`` and ``exception``; it sets ``_watch = None``.
    """

    __slots__ = ("_watch",)
    _run: Any
    _id: int
    _efut: Any
    _watch: _Watch | None

    if TYPE_CHECKING:

        @property
        def state(self) -> str: ...

    def running(self) -> bool:
        """Whether the task's code is executing now (or waits between two attempts)."""
        return self.state in ("running", "retrying")

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None:
        """Call ``fn(future)`` once the task has ended (at once, in this thread, if it has).

        Otherwise in the thread that ends it; an exception ``fn`` raises is logged and ignored.
        """
        watch = self._watched()
        with watch.condition:
            if not watch.told:
                watch.callbacks.append(fn)
                return
        _call(fn, self)

    # --- what concurrent.futures.wait and as_completed read ------------------------------------

    @property
    def _condition(self) -> threading.Condition:
        self._run_if_lazy()
        return self._watched().condition

    @property
    def _waiters(self) -> list:
        return self._watched().waiters

    @property
    def _state(self) -> str:
        watch = self._watch
        if watch is not None and not watch.told and self.state in TERMINAL:
            return RUNNING  # ended, but its waiters are not told yet: they will be
        return _STD_STATES[self.state]

    # --- machinery ---------------------------------------------------------------------------

    def _run_if_lazy(self) -> None:
        """A lazy ("sync") task runs when waited on: run queued work up to it."""
        run = self._run
        if run._lazy and self.state not in TERMINAL and not self._efut.done():
            run.executor.run_until(self._efut)

    def _watched(self) -> _Watch:
        watch = self._watch
        if watch is None:
            with _make_lock:
                watch = self._watch
                if watch is None:
                    watch = self._watch = _Watch()
                    self._run.tracker.on_end(self._id, self._ended)
        return watch

    def _ended(self) -> None:
        """The tracker says the task ended: tell waiters and callbacks once its result is ready."""
        efut = self._efut
        if self.state != "cancelled" and not efut.done():
            # A pool's future ends the task in the tracker just before it is done itself.
            efut.add_done_callback(lambda _: self._tell())
        else:
            self._tell()

    def _tell(self) -> None:
        watch = self._watch
        assert watch is not None
        state = self.state
        if not watch.tell(self, state if state in ("cancelled", "failed") else "success"):
            return
        with watch.condition:  # a callback added from now on runs at once (``told``)
            callbacks, watch.callbacks = watch.callbacks, []
        if not callbacks:
            return
        if asyncio._get_running_loop() is not None:
            # Ended on an event loop (Dask's client): a callback that reads the result must not
            # block it, so the callbacks run in a thread of their own, as distributed's do.
            threading.Thread(target=_call_all, args=(callbacks, self), daemon=True).start()
        else:
            _call_all(callbacks, self)


def _call_all(callbacks: list[Callable[[Any], Any]], future: Any) -> None:
    for fn in callbacks:
        _call(fn, future)


def _call(fn: Callable[[Any], Any], future: Any) -> None:
    try:
        fn(future)
    except Exception:
        logging.getLogger("nbexec").exception("done callback %r of %r failed", fn, future)
