"""Done callbacks for many ``distributed.Future``s at the cost of a few, not one coroutine each.

``Future.add_done_callback`` costs, per future, a cross-thread wake-up of the client's event loop,
a coroutine that waits on the future's state, and a hop to a callback thread: with an in-process
cluster (scheduler, workers and client share one GIL) that was a large part of what a run added
to a ``client.submit`` loop. ``DoneWatch`` queues ``(future, callback)`` pairs and installs them
on the event loop in batches (one wake-up per batch); each future's state gets an
``asyncio.Event`` whose ``set()`` -- called by distributed when the future finishes, errs or is
cancelled -- runs the callback at once. Callbacks of finished and cancelled futures run inline on
the event loop, so they must be quick and thread-agnostic; erred futures (whose ``exception()``
needs a round trip through the loop) and anything unusual go through ``add_done_callback``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("nbexec.DaskExecutor")

_INLINE = ("finished", "cancelled")


class _DoneEvent(asyncio.Event):
    """A future state's event that calls its callback the first time it is set."""

    def __init__(self, future: Any, callback: Callable[[Any], None]):
        super().__init__()
        self._nbexec_done: tuple | None = (future, callback)

    def set(self) -> None:
        super().set()
        pending = self._nbexec_done
        if pending is not None:
            self._nbexec_done = None
            _call(*pending)


def _call(future: Any, callback: Callable[[Any], None]) -> None:
    if future.status in _INLINE:
        try:
            callback(future)
        except Exception:  # noqa: BLE001 - never break distributed's event loop
            logger.exception("Error in done callback of %s", future)
    else:
        future.add_done_callback(callback)


def _watch(future: Any, callback: Callable[[Any], None]) -> None:
    """On the client's event loop: call ``callback(future)`` once ``future`` is done."""
    state: Any = getattr(future, "_state", None)
    event = getattr(state, "_event", False)
    if event is None and state.status == "pending":
        state._event = _DoneEvent(future, callback)
    elif isinstance(event, asyncio.Event) and event.is_set():
        _call(future, callback)
    else:  # someone already waits on it, or distributed changed: its own way
        future.add_done_callback(callback)


class DoneWatch:
    """``add(future, callback)`` from any thread; installed on ``client``'s loop in batches."""

    def __init__(self, client: Any):
        self._loop = client.loop
        self._queue: collections.deque = collections.deque()
        self._scheduled = False

    def add(self, future: Any, callback: Callable[[Any], None]) -> None:
        self._queue.append((future, callback))
        if not self._scheduled:
            self._scheduled = True
            self._loop.add_callback(self._install)

    def _install(self) -> None:
        self._scheduled = False  # before draining: a pair added from now on schedules again
        queue = self._queue
        while queue:
            future, callback = queue.popleft()
            try:
                _watch(future, callback)
            except Exception:  # noqa: BLE001 - never break distributed's event loop
                logger.exception("Could not watch %s", future)
                future.add_done_callback(callback)
