"""Runs: submit work through an executor, track it, wait for it, report failures.

``with nbexec.run(...) as run:`` makes ``run`` current in this thread: calling a task (or
``nbexec.submit``/``nbexec.map``) inside the block submits it and returns a ``TaskFuture``.
Leaving the block waits for every task and raises ``TaskFailed`` for the first failure in
submission order.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ..executors.base import INLINE, Executor, iter_leaves, map_structure
from ..runtime._taskcall import install_output_tee, task_body
from . import _timeouts, history
from ._calls import dependencies, may_hold_futures, wrapped
from ._calls import name_of as _name_of
from ._counted_get import CountedGet
from ._dask_route import route_dask
from ._lanes import Call, lane_for, record_outcome
from .futures import _NO_VALUE, TaskFailed, TaskFuture, _is_task_future, _user_traceback
from .snapshot import TERMINAL, Snapshot
from .tracking import Tracker

__all__ = ["Run", "TaskFuture", "TaskFailed", "current_run"]

_stack = threading.local()
_lingering: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
NO_WORKERS = "no workers: tasks wait until a worker joins"
_NO_KWARGS: dict = {}  # what map's calls are scanned with (never passed on)


def current_run() -> Run | None:
    """The innermost active run of this thread, or None."""
    runs = getattr(_stack, "runs", None)
    return runs[-1] if runs else None


class Run:
    """A group of tasks submitted through one executor, with their status model (``tracker``)."""

    def __init__(self, executor: Executor, *, track_dask: bool = True):
        if not isinstance(executor, Executor):
            raise TypeError(f"Run needs an nbexec Executor, got {type(executor).__name__}")
        self.executor = executor
        self.tracker = Tracker()
        self.futures: list[TaskFuture] = []
        self._track_dask = track_dask
        self._stack = contextlib.ExitStack()
        self._emit: Callable | None = None
        self._lazy = executor.lazy
        self._lane = lane_for(executor)  # how tasks reach the executor: its declared intake
        self._active = False
        self.tracker.info["mode"] = executor.mode
        self.cell: str | None = None  # the source of the cell that made it, if any
        self._dask_config: Any = None  # routes dask collections' compute() while active
        self.retry_record = history.RetryRecord()  # what retry() needs
        self._quiet = False  # tasks keep what they print; the tracker's echo shows it
        self._watch_timeouts = executor.watch_timeouts  # enforced by the kernel too (_timeouts)
        self._superseded: set[int] = set()  # tasks whose key _timeouts replaced by a new attempt

    # --- context -------------------------------------------------------------------------------

    def __enter__(self) -> Run:
        if self._active:
            raise RuntimeError("this run is already active")
        stack = self._stack
        try:
            if not self.executor.started:
                stack.enter_context(self.executor.start())
            lingering = _lingering.pop(self.executor, None)
            if lingering is not None:
                lingering.close()
            channel = self.executor.event_channel(self.tracker.event)
            # Events may trail the results (Dask routes them through the scheduler): the channel
            # stays open until the next run on this executor starts, or the executor stops.
            stack.callback(_lingering.__setitem__, self.executor, channel)
            self._emit = channel.emit
            stack.callback(self.executor.watch_workers(self._on_workers))
            if self._track_dask:
                self._dask_config = route_dask(CountedGet(self))
                stack.callback(self._leave_dask)
        except BaseException:
            stack.close()
            raise
        install_output_tee()  # what tasks print in this process is kept per task
        history.register(self)
        runs = getattr(_stack, "runs", None)
        if runs is None:
            runs = _stack.runs = []
        runs.append(self)
        self._active = True
        if self.tracker.info.get("ended"):
            self.tracker.set_info(ended=None, interrupted=None)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        __tracebackhide__ = True
        failure = None
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.tracker.set_info(interrupted=True)
        try:
            if exc_type is None:
                self.wait()
                failure = self.failure()  # before an executor started for this run stops
            else:
                self.interrupt()
        finally:
            self._leave_thread()
            self._end()
        if failure is not None:
            raise failure from failure.__cause__

    def _leave_dask(self) -> None:
        leave, self._dask_config = self._dask_config, None
        if leave is not None:
            leave()

    def detach(self) -> None:
        """Let the run go on without this thread: calls here no longer submit to it, and dask
        collections no longer compute through it. ``end_detached()`` ends it later."""
        self._leave_thread()
        self._leave_dask()

    def _leave_thread(self) -> None:
        runs = getattr(_stack, "runs", [])
        if self in runs:
            runs.remove(self)

    def end_detached(self) -> TaskFailed | None:
        """Wait for every task of a detached run, then end it as leaving its block does (from
        any thread); returns the first failure instead of raising it."""
        try:
            self.wait()
            return self.failure()
        finally:
            self._end()

    def _end(self) -> None:
        self._active = False
        self.tracker.set_info(ended=True)  # views say "finished" only from here on
        try:
            history.settle(self)
        finally:
            self._stack.close()

    def route_output(self, write: Callable[[str], None]) -> None:
        """Show what this run's tasks print through ``write`` (from any thread) instead of the
        streams of the process and thread they run in (a background cell's tasks). Tasks run
        inline print where they are called, as before."""
        if self.executor.intake != INLINE:
            self.tracker.echo = write
            self._quiet = True

    def _on_workers(self, op: str, worker: str | None, n_workers: int) -> None:
        """Worker events of a cluster executor: count losses, say why nothing runs with none."""
        info = self.tracker.info
        lost = info.get("workers_lost", 0) + (op == "remove")
        self.tracker.set_info(
            workers=n_workers,
            workers_lost=lost or None,
            note=NO_WORKERS if n_workers == 0 else None,
        )

    # --- submission ----------------------------------------------------------------------------

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Submit ``fn(*args, **kwargs)``; TaskFutures anywhere in the arguments are dependencies."""
        if not callable(fn):
            raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
        task = getattr(fn, "__nbexec_task__", None)
        if task is not None:
            return self._submit(
                task.body, task.name, args, kwargs, task.tags, task.retries, task.retry_delay,
                timeout=task.timeout,
            )  # fmt: skip
        return self._submit(task_body(fn), _name_of(fn), args, kwargs)

    def map(self, fn: Callable, *iterables: Iterable) -> list[TaskFuture]:
        """Submit ``fn`` once per element of the zipped iterables (like the builtin ``map``)."""
        task = getattr(fn, "__nbexec_task__", None)
        if task is not None:
            body, name, options = task.body, task.name, (task.tags, task.retries, task.retry_delay)
            timeout = task.timeout
        else:
            body, name, options, timeout = task_body(fn), _name_of(fn), ((), 0, 0.0), None
        items = list(zip(*iterables))
        if not items:
            return []
        self._require_active()
        calls: list[Call] = [
            dependencies(self, args, {}) if may_hold_futures(args, _NO_KWARGS) else (args, {}, None)
            for args in items
        ]
        fn = wrapped(body, timeout, self._quiet) if timeout or self._quiet else body
        futures = self._lane.take(self, fn, name, calls, (*options, 0))
        self.futures += futures
        ids = [f._id for f in futures]
        self.retry_record.given.append((ids, body, name, items, {}, *options, timeout))
        if timeout and self._watch_timeouts:  # the kernel enforces it too (core/_timeouts.py)
            for future in futures:
                _timeouts.watch(future, timeout, options[1])
        return futures

    def _submit(
        self, fn, name, args, kwargs, tags=(), retries=0, retry_delay=0.0, index=None, timeout=None
    ) -> TaskFuture:
        """One task: ``fn(*args, **kwargs)`` (``nbexec.submit``, task calls, retries). With
        ``map`` the one way into the executor: the lane of its declared intake."""
        self._require_active()
        call: Call = (args, kwargs, None)
        if may_hold_futures(args, kwargs):
            call = dependencies(self, args, kwargs)
        options = (tags, retries, retry_delay, index)
        call_fn = wrapped(fn, timeout, self._quiet) if timeout or self._quiet else fn
        future = self._lane.take_one(self, call_fn, name, call, options)
        self.futures.append(future)
        self.retry_record.given.append(
            (future._id, fn, name, args, kwargs, tags, retries, retry_delay, timeout)
        )
        if timeout and self._watch_timeouts:
            _timeouts.watch(future, timeout, retries)
        return future

    @property
    def active(self) -> bool:
        """True from entering the run until it ended (a background run stays active meanwhile)."""
        return self._active

    def _require_active(self) -> None:
        if not self._active:
            raise RuntimeError("this run is not active; submit inside `with nbexec.run(...):`")

    def _on_done(self, future: TaskFuture, efut: Any) -> None:
        """An executor future of this run is done (``Executor.on_done``): record the outcome."""
        if future._id in self._superseded and efut is not future._efut:
            return  # the stopped key of a timed-out attempt (core/_timeouts.py)
        record_outcome(self.tracker, future, efut)

    def resubmit(self, future: TaskFuture, call: tuple) -> Any:
        """Submit ``call`` (``fn, args, kwargs, extra_context``) as ``future``'s task from now on;
        returns the executor future it replaces (its outcome no longer counts)."""
        self._superseded.add(future._id)
        old = future._efut
        self._lane.resubmit(self, future, *call)
        return old

    # --- waiting -------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Run the lazily queued work of a synchronous executor (in this thread)."""
        pending = [f._efut for f in self.futures if not f._efut.done()]
        if pending:
            with contextlib.suppress(Exception):
                self.executor.wait(pending)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every task has ended; True if they all did within ``timeout``."""
        __tracebackhide__ = True
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if self._lazy:
                self._drain()
            while not self.tracker.wait_all(0.1):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        except KeyboardInterrupt:
            self.tracker.set_info(interrupted=True)
            self.interrupt()
            raise
        return True

    def interrupt(self) -> None:
        """Stop every task that has not ended: pending never start, running ones are stopped or released.

        They are recorded "cancelled" with the reason "interrupted" before the executor is told,
        so the table says why even where the executor's own cancellation reports first.
        """
        open_futures = []
        for f in self.futures:
            if f.state in TERMINAL:
                continue
            if f._efut.done():  # it ended where it ran; its report (a Dask callback) may trail
                self._on_done(f, f._efut)
            else:
                open_futures.append(f)
        if open_futures:
            self._stop(open_futures, "interrupted")

    def cancel(self, futures: Iterable[TaskFuture] | None = None) -> int:
        """Cancel this run's tasks that have not ended (all of them, or those in ``futures``).

        Pending ones never start; running ones are stopped where the mode can stop them (threads
        at their next Python line, process-pool children killed and replaced, Dask keys
        cancelled and, on a cluster nbexec created, their threads interrupted). They are
        recorded "cancelled"; the run goes on and its other tasks finish. Returns how many.
        """
        targets = self.futures if futures is None else futures
        open_futures = [f for f in targets if f._run is self and f.state not in TERMINAL]
        if open_futures:
            self._stop(open_futures, "cancelled")
        return len(open_futures)

    def _stop(self, futures: list[TaskFuture], reason: str) -> None:
        for f in futures:
            self.tracker.finish(f._id, "cancelled", reason)
        self.executor.interrupt([f._efut for f in futures])

    def retry(self, executor: Executor | None = None) -> Run:
        """Run this run's failed and cancelled tasks again (and what depended on them), in a new
        run on ``executor`` (default: this run's); tasks that succeeded do not run again, their
        results are passed on. Returns the new run once it ended; raises ``TaskFailed`` as a run
        does if a task failed again (the new run is then ``nbexec.runs()[-1]``)."""
        __tracebackhide__ = True
        new = history.plan_retry(self, executor)
        with new:
            history.resubmit(new)
        return new

    def light_copy(self, retry_record: history.RetryRecord) -> Run:
        """A copy sharing this run's records (tracker, cell, executor) without its futures,
        event channel or exit stack: what the registry keeps of an ended run."""
        light = type(self).__new__(type(self))
        light.__dict__.update(self.__dict__)
        light.futures = []
        light._emit = None
        light._stack = contextlib.ExitStack()
        light._dask_config = None
        light.retry_record = retry_record
        return light

    def failure(self) -> TaskFailed | None:
        """TaskFailed for the first failed task in submission order (its cause set), or None.

        Failures already raised to the code that used the task's value (where it could catch
        them) do not count: that code has seen them.
        """
        failed = [f for f in self.futures if f.state == "failed" and not f._raised]
        if not failed:
            return None
        first = failed[0]
        try:
            error = first._efut.exception()
        except BaseException as exc:  # the future cannot give its exception back
            error = exc
        if error is None:
            error = RuntimeError(self.tracker.record(first._id).error or "unknown error")
        failure = TaskFailed(first.name, first.key, error, len(failed) - 1)
        failure.__cause__ = _user_traceback(error)
        return failure

    def raise_failure(self) -> None:
        """Raise TaskFailed for the first failed task in submission order, if any failed."""
        __tracebackhide__ = True
        failure = self.failure()
        if failure is not None:
            raise failure from failure.__cause__

    # --- views ---------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return self.tracker.snapshot()

    def summary(self) -> dict[str, dict[str, int]]:
        """``{task_name: {state: count}}`` with the non-zero counts, names in first-submission order."""
        return {
            row.name: {s: n for s, n in row.counts.items() if n} for row in self.snapshot().rows
        }

    @property
    def table(self) -> Any:
        """A displayable view of this run's tasks (text and HTML)."""
        from .render import RunView

        return RunView(self)

    def resolve(self, obj: Any) -> Any:
        """``obj`` with every successful TaskFuture inside it replaced by its result (others kept)."""
        done = {id(f): f for f in iter_leaves(obj, _is_task_future) if f.state == "success"}
        if not done:
            return obj
        futures = list(done.values())
        todo = [f for f in futures if f._value is _NO_VALUE]
        if len(todo) > 1:  # many at once where the executor can (Dask: one gather)
            try:
                values = self.executor.gather([f._efut for f in todo])
            except Exception:  # one by one, to name the task whose value cannot come back
                values = [f.result() for f in todo]
            for f, v in zip(todo, values):
                f._value = v  # kept: a value changed in the cell stays changed
        by_id = {id(f): f.result() for f in futures}
        return map_structure(lambda f: by_id.get(id(f), f), obj, _is_task_future)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.tracker.snapshot().totals.items() if n)
        return f"<Run {self.tracker.info.get('mode', '?')}: {counts or 'no tasks'}>"
