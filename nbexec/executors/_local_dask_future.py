"""``LocalDaskFuture``: the future of a ``LocalDaskExecutor`` task, and how its arguments are
scanned for the executor's own futures (the task's dependencies).

It is a ``SlimFuture`` (the pools complete it as they do a run's), with the task's ``key``; it
keeps the ``concurrent.futures.Future`` API and works with ``concurrent.futures.wait`` and
``as_completed``. In "synchronous" mode, waiting on it runs the queued work up to it first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from ..pools._slimfuture import SlimFuture
from .base import unique_token

__all__ = ["LocalDaskFuture", "Owner", "find_own", "is_future", "result_of", "ATOMIC"]

#: Types that never hold a future: the argument scan skips them.
ATOMIC = frozenset({int, float, str, bytes, bool, type(None), complex})
_CONTAINERS = (list, tuple, set, frozenset)


class Owner(Protocol):
    """What a LocalDaskFuture needs of its executor (a ``LocalDaskExecutor``)."""

    def _drain(self, until: Any = None) -> None: ...

    def _on_keyboard_interrupt(self, exc: BaseException, future: SlimFuture | None) -> None: ...


class LocalDaskFuture(SlimFuture):
    """The future of a LocalDaskExecutor task (a ``SlimFuture``), with its ``key``."""

    __slots__ = ("_executor", "_name", "_key")

    def __init__(self, executor: Owner, name: str, key: str | None) -> None:
        SlimFuture.__init__(self)
        self._executor = executor
        self._name = name
        self._key = key

    @property
    def key(self) -> str:
        """The task key: ``name-index-uuid`` / ``name-uuid`` from extra_context, else ``fn-uuid``."""
        if self._key is None:
            self._key = f"{self._name}-{unique_token()}"
        return self._key

    def __repr__(self) -> str:
        return f"<LocalDaskFuture {self.key} {self._st.lower()}>"

    def result(self, timeout: float | None = None) -> Any:
        """The task's value; in "synchronous" mode this runs queued work up to this task first."""
        return self._drained(SlimFuture.result, timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception (None if it succeeded); drains queued work like ``result``."""
        return self._drained(SlimFuture.exception, timeout)

    def _drained(
        self, read: Callable[[SlimFuture, float | None], Any], timeout: float | None
    ) -> Any:
        """``read(self, timeout)`` once queued work up to this task ran; an interrupt while
        waiting stops the executor's work as in ``wait``."""
        try:
            if not self.done():
                self._executor._drain(self)
            return read(self, timeout)
        except KeyboardInterrupt as exc:
            self._executor._on_keyboard_interrupt(exc, self)
            raise

    @property
    def _condition(self) -> threading.Condition:
        # concurrent.futures.wait/as_completed: a "synchronous" task runs once waited on.
        if not self.done():
            self._executor._drain(self)
        return self._watched().condition


def find_own(obj: Any, out: list, executor: Owner) -> None:
    """Append to ``out`` the futures of ``executor`` inside ``obj`` (nested lists, tuples, sets,
    dicts)."""
    t = type(obj)
    if t in ATOMIC:
        return
    if isinstance(obj, LocalDaskFuture):
        if obj._executor is executor:
            out.append(obj)
    elif isinstance(obj, _CONTAINERS):
        for x in obj:
            find_own(x, out, executor)
    elif isinstance(obj, dict):
        for x in obj.values():
            find_own(x, out, executor)


def result_of(future: Any) -> Any:
    """``future.result()``."""
    return future.result()


def is_future(x: Any) -> bool:
    """A future ``LocalDaskExecutor.wait`` resolves: a SlimFuture or a ``concurrent.futures.Future``."""
    return isinstance(x, (SlimFuture, Future))
