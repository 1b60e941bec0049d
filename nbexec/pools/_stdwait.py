"""What ``concurrent.futures.wait`` and ``as_completed`` need of a future that is not a
``concurrent.futures.Future``: a per-future condition and list of waiters, both made only once
someone waits (``StdWatch``), and the waiters told of the end exactly once.

``wait`` and ``as_completed`` hold every future's ``_condition`` while they read ``_state`` and
install their waiter, so a future reports itself done to them only once its waiters have been
told (``StdWatch.told``); until then it reads as running and the waiter it gets is told later.
``std_future_status`` reads how such a future ended without waiting.
"""

from __future__ import annotations

import threading
from concurrent.futures._base import CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import Any

__all__ = [
    "StdWatch",
    "std_future_status",
    "CANCELLED_AND_NOTIFIED",
    "FINISHED",
    "PENDING",
    "RUNNING",
]


class StdWatch:
    """A waited-on future's condition and stdlib waiters; ``told`` once they know it ended."""

    __slots__ = ("condition", "waiters", "told")

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.waiters: list = []
        self.told = False

    def tell(self, future: Any, outcome: str) -> bool:
        """Tell the waiters that ``future`` ended (``outcome``: "success", "failed" or
        "cancelled") and wake threads waiting on the condition; False if they were told already."""
        with self.condition:
            if self.told:
                return False
            self.told = True
            for waiter in self.waiters:
                if outcome == "cancelled":
                    waiter.add_cancelled(future)
                elif outcome == "failed":
                    waiter.add_exception(future)
                else:
                    waiter.add_result(future)
            self.condition.notify_all()
        return True


def std_future_status(future: Any) -> str:
    """``Executor.future_status`` of a future with the ``concurrent.futures.Future`` API."""
    if not future.done():
        return "pending"
    if future.cancelled():
        return "cancelled"
    return "finished" if future.exception(timeout=0) is None else "error"
