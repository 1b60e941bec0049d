"""The future of a run's task on a local pool: it reports its own transitions to the run's tracker.

To an executor whose intake is a pool (``Executor.intake``: ``POOL``, ``POOL_PROCESS``; the
threads, sync and processes modes) a run hands a ``RunFuture`` through ``submit_to``: no executor
future, no done callback and no wrapper around the task's function (unless it has retries). The
pool's own transitions are the tracking:

- ``POOL`` (``RunFutureHere``): the pool claims the future in the thread that runs the call,
  right before calling it; that is when the task is "running", and where.
- ``POOL_PROCESS`` (``RunFuture``): the claim happens at dispatch, so "running" comes from the
  child (``set_started`` once a task has run for a moment); when and where every task ran comes
  with its outcome (``set_ran``), in the same tracker event.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..pools._slimfuture import CANCELLED, SlimFuture
from ..runtime._taskcall import output_sink, set_output_sink, where_of
from ._errtext import traceback_text
from .futures import _future_failed
from .tracking import Tracker

__all__ = ["RunFuture", "RunFutureHere", "report_outcome", "upstream_reason"]


def upstream_reason(deps: Any) -> str | None:
    """Why a task whose dependencies are ``deps`` (TaskFutures) did not run, if one failed."""
    for upstream in deps or ():
        if upstream.state in ("failed", "cancelled") or _future_failed(upstream):
            return f"upstream task {upstream.name!r} failed"
    return None


def report_outcome(
    tracker: Tracker, task_id: int, deps: Any, exc: BaseException | None, ran: tuple | None = None
) -> None:
    """Finish the task in ``tracker``: success, failed (with the traceback text), or cancelled
    because an upstream task failed (dependents get the upstream's exception).

    ``ran``: ``(t_start, t_end, where)`` of the call, when the pool reported them.
    """
    if exc is None:
        tracker.finish(task_id, "success", ran=ran)
        return
    output = getattr(exc, "_nbexec_output", None)  # what a wrapped task printed before failing
    if output:
        tracker.set_output(task_id, output)
    reason = upstream_reason(deps)
    if reason:
        tracker.finish(task_id, "cancelled", reason)
        return
    text = traceback_text(exc)  # as without nbexec: the user's frames, cells as "Cell In[n]"
    tracker.finish(task_id, "failed", f"{type(exc).__name__}: {exc}", text, ran)


class RunFuture(SlimFuture):
    """A SlimFuture that reports "running" (from ``set_started``) and its end to ``tracker``."""

    __slots__ = ("_tracker", "_id", "_deps")

    def __init__(self, tracker: Tracker, task_id: int, deps: tuple | None) -> None:
        super().__init__()
        self._tracker = tracker
        self._id = task_id
        self._deps = deps

    def set_started(self, t: float, where: str) -> None:
        self._tracker.running(self._id, t, where)

    def set_output(self, text: str) -> None:
        """Everything the call printed, sent by the pool with its outcome."""
        self._tracker.set_output(self._id, text)

    def add_output_part(self, at: int, parts: list) -> None:
        """A part of what the call printed, sent by the pool while it runs."""
        self._tracker.add_part(self._id, at, parts)

    def write_output(self, text: str) -> None:
        """A piece of what the call prints (this future is the sink of the thread running it)."""
        self._tracker.add_output(self._id, text)

    def _on_finished(self, state: str) -> None:
        if state is CANCELLED:
            self._tracker.finish(self._id, "cancelled", upstream_reason(self._deps) or "cancelled")
        else:
            report_outcome(self._tracker, self._id, self._deps, self._exception)


class RunFutureHere(RunFuture):
    """A RunFuture claimed by the very thread that runs the call (threads, sync)."""

    __slots__ = ()

    def _on_running(self) -> None:
        thread = threading.current_thread()
        set_output_sink(thread, self)  # what the call prints (OutputTee)
        self._tracker.running(self._id, time.time(), where_of(thread))

    def _on_finished(self, state: str) -> None:
        thread = threading.current_thread()
        if output_sink(thread) is self:
            set_output_sink(thread, None)
        super()._on_finished(state)
