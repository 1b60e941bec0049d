"""How a run hands its tasks to its executor: one lane per ``Executor.intake``.

``Run`` prepares a task's call, or a map's calls (dependencies found, the function wrapped for
its timeout and output), and hands them to its lane, chosen once from the executor's declared
``intake``; the lane registers the tasks in the run's tracker, submits them and returns their
TaskFutures:

- ``InlineLane`` (``INLINE``): calls each task now, in this thread, and records its outcome.
- ``PoolLane`` (``POOL``, ``POOL_PROCESS``): makes each task's ``RunFuture`` (which reports to the
  tracker itself) and hands it over with ``submit_to``.
- ``FuturesLane`` (``FUTURES``): ``submit_future`` per task, or one ``map`` for calls without
  dependencies, and follows each future with ``on_done``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from ..executors.base import INLINE, POOL, POOL_PROCESS, Executor, map_structure
from ..pools._slimfuture import SlimFuture
from ..runtime._taskcall import (
    MappedTaskCall,
    TaskCall,
    call_in_task_body,
    output_sink,
    set_output_sink,
)
from ._runfuture import RunFuture, RunFutureHere, report_outcome, upstream_reason
from .futures import TaskFuture
from .tracking import Tracker

if TYPE_CHECKING:
    from ._runtype import RunLike

__all__ = ["Lane", "Options", "Call", "lane_for", "record_outcome"]

#: A batch's task options: (tags, retries, retry_delay, index of its first call or None).
Options = tuple[tuple, int, float, "int | None"]
#: One call: (args, kwargs, deps); deps are the run's TaskFutures it waits for, or None.
Call = tuple[tuple, dict, "tuple | None"]


class Lane:
    """Registers, submits and follows a run's tasks (holds no run, so a run and its lane make no
    reference cycle). ``take_one`` takes one task, ``take`` a batch of calls of one function."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def take_one(
        self, run: RunLike, fn: Callable, name: str, call: Call, options: Options
    ) -> TaskFuture:
        """The TaskFuture of ``run`` for ``fn`` called with ``call``, submitted."""
        raise NotImplementedError

    def take(
        self, run: RunLike, fn: Callable, name: str, calls: Sequence[Call], options: Options
    ) -> list[TaskFuture]:
        """TaskFutures of ``run`` for ``fn`` called with each of ``calls``, submitted (by default
        one by one; task indexes count from ``options[3]``)."""
        tags, retries, delay, first = options
        futures: list[TaskFuture] = []
        try:
            for n, call in enumerate(calls):
                index = None if first is None else first + n
                futures.append(self.take_one(run, fn, name, call, (tags, retries, delay, index)))
        except BaseException:
            run.futures.extend(futures)
            raise
        return futures

    def resubmit(
        self,
        run: RunLike,
        future: TaskFuture,
        fn: Callable,
        args: tuple,
        kwargs: dict,
        context: dict,
    ) -> None:
        """Submit ``fn(*args, **kwargs)`` (``submit_future``) as ``future``'s task from now on."""
        efut = self.executor.submit_future(fn, *args, extra_context=context, **kwargs)
        future._efut = efut
        self._follow(run, future)

    def _follow(self, run: RunLike, future: TaskFuture) -> TaskFuture:
        efut = future._efut
        run.tracker.set_key(future._id, self.executor.task_key(efut))
        self.executor.on_done(efut, partial(run._on_done, future))
        return future


class InlineLane(Lane):
    """Each call runs now, in this thread; its outcome is recorded directly."""

    def __init__(self, executor: Executor) -> None:
        super().__init__(executor)
        self.here = f"pid {os.getpid()}"
        self.sink: _InlineSink | None = None  # where inline tasks print (one at a time)

    def take_one(
        self, run: RunLike, fn: Callable, name: str, call: Call, options: Options
    ) -> TaskFuture:
        task_id = run.tracker.add(name, None, running_on=self.here)
        return self._call(run, task_id, fn, call, options)

    def take(
        self, run: RunLike, fn: Callable, name: str, calls: Sequence[Call], options: Options
    ) -> list[TaskFuture]:
        """All the calls are registered first (the view counts them all from the start), then
        each runs in turn; an interrupt cancels the ones it did not reach."""
        tracker = run.tracker
        ids = tracker.add_many(name, len(calls))
        futures: list[TaskFuture] = []
        try:
            for task_id, call in zip(ids, calls):
                tracker.running(task_id, where=self.here)
                futures.append(self._call(run, task_id, fn, call, options))
        except BaseException:
            for task_id in ids[len(futures) + 1 :]:
                tracker.finish(task_id, "cancelled", "interrupted")
            run.futures.extend(futures)
            raise
        return futures

    def _call(
        self, run: RunLike, task_id: int, fn: Callable, call: Call, options: Options
    ) -> TaskFuture:
        tracker, sink = run.tracker, self.sink
        if sink is None:
            sink = self.sink = _InlineSink(tracker, 0)
        args, kwargs, deps = call
        if options[1]:
            fn = TaskCall(fn, task_id, run._emit, options[1], options[2])
        thread = threading.current_thread()
        outer = output_sink(thread)
        sink.task_id = task_id
        set_output_sink(thread, sink)
        try:
            if deps:
                args, kwargs = map_structure(SlimFuture.result, (args, kwargs), _is_inline_done)
            efut = SlimFuture.finished(call_in_task_body(fn, args, kwargs))
        except Exception as exc:
            efut = SlimFuture.finished(None, exc)
        except BaseException:  # an interrupt: the task is over, not "running"
            tracker.finish(task_id, "cancelled", "interrupted")
            raise
        finally:
            set_output_sink(thread, outer)
        report_outcome(tracker, task_id, deps, efut._exception)
        return TaskFuture(run, task_id, efut, deps)


def _is_inline_done(x: Any) -> bool:
    """An inline task's own future (finished when its call returned), not a pool's subclass."""
    return type(x) is SlimFuture


class PoolLane(Lane):
    """The run makes each task's RunFuture and the pool completes it (``submit_to``)."""

    def __init__(self, executor: Executor, future_class: type[RunFuture]) -> None:
        super().__init__(executor)
        self.future_class = future_class

    def take_one(
        self, run: RunLike, fn: Callable, name: str, call: Call, options: Options
    ) -> TaskFuture:
        tracker = run.tracker
        task_id = tracker.add(name, None)
        try:
            return self._hand(run, task_id, fn, call, options)
        except BaseException as exc:
            _fail_rest(tracker, (task_id,), 0, exc)
            raise

    def take(
        self, run: RunLike, fn: Callable, name: str, calls: Sequence[Call], options: Options
    ) -> list[TaskFuture]:
        tracker = run.tracker
        ids = tracker.add_many(name, len(calls))  # registered at once, then handed over
        futures: list[TaskFuture] = []
        try:
            for task_id, call in zip(ids, calls):
                futures.append(self._hand(run, task_id, fn, call, options))
        except BaseException as exc:
            _fail_rest(tracker, ids, len(futures), exc)
            run.futures.extend(futures)
            raise
        return futures

    def _hand(
        self, run: RunLike, task_id: int, fn: Callable, call: Call, options: Options
    ) -> TaskFuture:
        args, kwargs, deps = call
        efut = self.future_class(run.tracker, task_id, deps)
        if options[1]:
            fn = TaskCall(fn, task_id, run._emit, options[1], options[2])
        after = [d._efut for d in deps] if deps else None
        self.executor.submit_to(efut, fn, args, kwargs, after)
        return TaskFuture(run, task_id, efut, deps)


class FuturesLane(Lane):
    """``submit_future`` per call, or one ``map`` for a batch without dependencies."""

    def take_one(
        self, run: RunLike, fn: Callable, name: str, call: Call, options: Options
    ) -> TaskFuture:
        tracker, executor = run.tracker, self.executor
        args, kwargs, deps = call
        tags, retries, delay, index = options
        task_id = tracker.add(name, "")
        task_call = TaskCall(fn, task_id, run._emit, retries, delay)
        context = {"task_name": name, "task_index": index, "task_tags": tuple(tags)}
        try:
            efut = executor.submit_future(task_call, *args, extra_context=context, **kwargs)
        except BaseException as exc:
            _fail_rest(tracker, (task_id,), 0, exc)
            raise
        return self._follow(run, TaskFuture(run, task_id, efut, deps))

    def take(
        self, run: RunLike, fn: Callable, name: str, calls: Sequence[Call], options: Options
    ) -> list[TaskFuture]:
        if any(deps for _, _, deps in calls):
            return super().take(run, fn, name, calls, options)
        tracker, (tags, retries, delay, _) = run.tracker, options
        ids = tracker.add_many(name, len(calls))
        mapped = MappedTaskCall(fn, run._emit, retries, delay)
        context: dict[str, Any] = {"task_name": name, "task_tags": tuple(tags)}
        try:
            efuts = self.executor.map(
                mapped, ids, *zip(*(args for args, _, _ in calls)), extra_context=context
            )
        except BaseException as exc:
            _fail_rest(tracker, ids, 0, exc)
            raise
        return [self._follow(run, TaskFuture(run, i, e, None)) for i, e in zip(ids, efuts)]


def _fail_rest(tracker: Tracker, ids: Sequence[int], done: int, exc: BaseException) -> None:
    """The executor refused a submission: the tasks not handed over fail with its error."""
    for task_id in ids[done:]:
        tracker.finish(task_id, "failed", f"{type(exc).__name__}: {exc}")


def lane_for(executor: Executor) -> Lane:
    """The lane of ``executor``'s declared intake."""
    intake = executor.intake
    if intake == INLINE:
        return InlineLane(executor)
    if intake == POOL:
        return PoolLane(executor, RunFutureHere)
    if intake == POOL_PROCESS:
        return PoolLane(executor, RunFuture)
    return FuturesLane(executor)


def record_outcome(tracker: Tracker, future: TaskFuture, efut: Any) -> None:
    """``future``'s executor future ``efut`` is done: record the task's outcome."""
    try:
        status = future._run.executor.future_status(efut)  # no round trip for what it knows
        if status == "cancelled":
            tracker.finish(future._id, "cancelled", upstream_reason(future._deps) or "cancelled")
            return
        if status == "finished":
            tracker.finish(future._id, "success")
            return
        exc = efut.exception()
    except BaseException as error:  # a future that cannot even report its state
        tracker.finish(future._id, "failed", f"{type(error).__name__}: {error}")
        return
    report_outcome(tracker, future._id, future._deps, exc)


class _InlineSink:
    """Where a task called inline prints: its row of the tracker."""

    __slots__ = ("tracker", "task_id")

    def __init__(self, tracker: Tracker, task_id: int) -> None:
        self.tracker = tracker
        self.task_id = task_id

    def write_output(self, text: str) -> None:
        self.tracker.add_output(self.task_id, text)
