"""Runs: submit work through an executor, track it, wait for it, report failures.

``with nbexec.run(...) as run:`` makes ``run`` current in this thread: calling a task (or
``nbexec.submit``/``nbexec.map``) inside the block submits it and returns a ``TaskFuture``.
Leaving the block waits for every task and raises ``TaskFailed`` for the first failure in
submission order.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from ..executors.base import Executor, iter_leaves, map_structure
from ..executors.local import LocalExecutor
from ..runtime._taskcall import (
    MappedTaskCall,
    TaskCall,
    call_in_task_body,
    call_quietly,
    call_with_timeout_of,
    install_output_tee,
    task_body,
)
from . import _timeouts, history
from ._counted_get import CountedGet
from ._dask_route import route_dask
from ._runfuture import pool_lane, report_outcome, upstream_reason
from .futures import (
    _NO_VALUE,
    TaskFailed,
    TaskFuture,
    _Done,
    _is_done,
    _is_task_future,
    _user_traceback,
)
from .snapshot import TERMINAL, Snapshot
from .tracking import Tracker

__all__ = ["Run", "TaskFuture", "TaskFailed", "current_run"]

_stack = threading.local()
_lingering: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
NO_WORKERS = "no workers: tasks wait until a worker joins"
_CONTAINERS = (list, tuple, dict, set, frozenset)


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
        self._inline = (
            isinstance(executor, LocalExecutor) and type(executor).submit is LocalExecutor.submit
        )
        self._lane = pool_lane(executor)
        self._active = False
        self._here = f"pid {os.getpid()}"
        self.tracker.info["mode"] = getattr(executor, "mode", "custom")
        self.cell: str | None = None  # the source of the cell that made it, if any
        self._dask_config: Any = None  # routes dask collections' compute() while active
        # What retry() needs (nbexec.core.history): the submitted calls while the run goes on, then
        # only those of failed and cancelled tasks.
        self._specs: list[tuple] = []
        self._retry_specs: dict[int, tuple] | None = None
        self._retry_source: dict[int, tuple] | None = None  # a retry run: what it re-submits
        self._retry_tracker: Tracker | None = None
        self._retried: dict[int, TaskFuture] = {}
        self._sink = _InlineSink(self.tracker, 0)  # where inline tasks print (one at a time)
        self._quiet = False  # tasks keep what they print; the tracker's echo shows it
        # Timeouts the kernel enforces too: Dask worker threads blocked in C (core/_timeouts.py).
        self._watch_timeouts = getattr(executor, "mode", None) == "dask"
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
            self._active = False
            self.tracker.set_info(ended=True)  # views say "finished" only from here on
            runs = getattr(_stack, "runs", [])
            if self in runs:
                runs.remove(self)
            try:
                history.settle(self)
            finally:
                self._stack.close()
        if failure is not None:
            raise failure from failure.__cause__

    def _leave_dask(self) -> None:
        leave, self._dask_config = self._dask_config, None
        if leave is not None:
            leave()

    def detach(self) -> None:
        """Let the run go on without this thread: calls here no longer submit to it, and dask
        collections no longer compute through it. ``end_detached()`` ends it later."""
        runs = getattr(_stack, "runs", [])
        if self in runs:
            runs.remove(self)
        self._leave_dask()

    def end_detached(self) -> TaskFailed | None:
        """Wait for every task of a detached run, then end it as leaving its block does (from
        any thread); returns the first failure instead of raising it."""
        try:
            self.wait()
            return self.failure()
        finally:
            self._active = False
            self.tracker.set_info(ended=True)
            try:
                history.settle(self)
            finally:
                self._stack.close()

    def route_output(self, write: Callable[[str], None]) -> None:
        """Show what this run's tasks print through ``write`` (from any thread) instead of the
        streams of the process and thread they run in (a background cell's tasks). Tasks run
        inline print where they are called, as before."""
        if not self._inline:
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
            fn, name, tags, retries, delay = (
                task.body,
                task.name,
                task.tags,
                task.retries,
                task.retry_delay,
            )
            timeout = task.timeout
        else:
            name, tags, retries, delay, timeout = _name_of(fn), (), 0, 0.0, None
            fn = task_body(fn)
        items = list(zip(*iterables))
        plain = not any(isinstance(a, _SCANNED) for args in items for a in args)
        if self._lane is not None and plain and items:
            return self._map_to_pool(fn, name, items, retries, delay, timeout)
        batch = getattr(self.executor, "map", None)
        if batch is None or not items or not plain:
            return [
                self._submit(fn, name, args, {}, tags, retries, delay, index, timeout)
                for index, args in enumerate(items)
            ]
        return self._map_batch(batch, fn, name, items, tags, retries, delay, timeout)

    def _map_batch(
        self, batch, fn, name, items, tags, retries, delay, timeout=None
    ) -> list[TaskFuture]:
        """One executor ``map`` call for all elements (Dask: ``client.map``)."""
        self._require_active()
        tracker = self.tracker
        ids = [tracker.add(name, "") for _ in items]
        self._specs.append((ids, fn, name, items, {}, tags, retries, delay, timeout))
        if timeout:
            fn = _Timed(fn, timeout)
        if self._quiet:
            fn = partial(call_quietly, fn)
        call = MappedTaskCall(fn, self._emit, retries, delay)
        context = {"task_name": name, "task_tags": tuple(tags)}
        try:
            efuts = batch(call, ids, *zip(*items), extra_context=context)
        except BaseException as exc:
            for task_id in ids:
                tracker.finish(task_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        futures = []
        for task_id, efut in zip(ids, efuts):
            tracker.set_key(task_id, getattr(efut, "key", None))
            future = TaskFuture(self, task_id, efut, None)
            futures.append(future)
            self.executor.on_done(efut, partial(self._on_done, future))
            if timeout and self._watch_timeouts:
                _timeouts.watch(future, timeout, retries)
        self.futures.extend(futures)
        return futures

    @property
    def active(self) -> bool:
        """True from entering the run until it ended (a background run stays active meanwhile)."""
        return self._active

    def _require_active(self) -> None:
        if not self._active:
            raise RuntimeError("this run is not active; submit inside `with nbexec.run(...):`")

    def _submit(
        self, fn, name, args, kwargs, tags=(), retries=0, retry_delay=0.0, index=None, timeout=None
    ) -> TaskFuture:
        self._require_active()
        given = args, kwargs  # before futures become executor futures: what retry() needs
        deps = None
        if _may_hold_futures(args, kwargs):
            found = [f for f in iter_leaves((args, kwargs), _is_task_future)]
            if any(f._run is not self for f in found):  # a future of an earlier run: its value
                args, kwargs = map_structure(
                    TaskFuture.result,
                    (args, kwargs),
                    lambda x: _is_task_future(x) and x._run is not self,
                )
                found = [f for f in found if f._run is self]
            if found:
                deps = tuple(found)
                args, kwargs = map_structure(lambda f: f._efut, (args, kwargs), _is_task_future)
        tracker = self.tracker
        call_fn = _Timed(fn, timeout) if timeout else fn  # enforced wherever the task runs
        if self._quiet:
            call_fn = partial(call_quietly, call_fn)
        if self._inline:
            future = self._run_inline(call_fn, name, args, kwargs, deps, retries, retry_delay)
            self._specs.append((future._id, fn, name, *given, tags, retries, retry_delay, timeout))
            return future
        if self._lane is not None:
            future = self._submit_to_pool(call_fn, name, args, kwargs, deps, retries, retry_delay)
            self._specs.append((future._id, fn, name, *given, tags, retries, retry_delay, timeout))
            return future
        task_id = tracker.add(name, "")
        self._specs.append((task_id, fn, name, *given, tags, retries, retry_delay, timeout))
        call = TaskCall(call_fn, task_id, self._emit, retries, retry_delay)
        context = {"task_name": name, "task_index": index, "task_tags": tuple(tags)}
        try:
            efut = self.executor.submit_future(call, *args, extra_context=context, **kwargs)
        except BaseException as exc:
            tracker.finish(task_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        tracker.set_key(task_id, getattr(efut, "key", None))
        future = TaskFuture(self, task_id, efut, deps)
        self.futures.append(future)
        self.executor.on_done(efut, partial(self._on_done, future))
        if timeout and self._watch_timeouts:
            _timeouts.watch(future, timeout, retries)
        return future

    def _submit_to_pool(self, fn, name, args, kwargs, deps, retries, retry_delay) -> TaskFuture:
        """LocalDaskExecutor: the pool completes a RunFuture, which reports to the tracker."""
        tracker = self.tracker
        task_id = tracker.add(name, None)
        efut = self._lane(tracker, task_id, deps)
        if retries:
            fn = TaskCall(fn, task_id, self._emit, retries, retry_delay)
        try:
            self.executor.submit_to(efut, fn, args, kwargs, deps and [d._efut for d in deps])
        except BaseException as exc:
            tracker.finish(task_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        future = TaskFuture(self, task_id, efut, deps)
        self.futures.append(future)
        return future

    def _map_to_pool(self, fn, name, items, retries, delay, timeout=None) -> list[TaskFuture]:
        """``map`` on a LocalDaskExecutor: the tasks are registered at once, then submitted."""
        self._require_active()
        tracker, lane, submit_to = self.tracker, self._lane, self.executor.submit_to
        ids = tracker.add_many(name, len(items))
        self._specs.append((ids, fn, name, items, {}, (), retries, delay, timeout))
        if timeout:
            fn = _Timed(fn, timeout)
        if self._quiet:
            fn = partial(call_quietly, fn)
        futures = []
        try:
            for task_id, args in zip(ids, items):
                efut = lane(tracker, task_id, None)
                call = TaskCall(fn, task_id, self._emit, retries, delay) if retries else fn
                submit_to(efut, call, args, {}, None)
                futures.append(TaskFuture(self, task_id, efut, None))
        except BaseException as exc:
            for task_id in ids[len(futures) :]:
                tracker.finish(task_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.futures.extend(futures)
        return futures

    def _run_inline(self, fn, name, args, kwargs, deps, retries, retry_delay) -> TaskFuture:
        """LocalExecutor: call now, in this thread, and record the outcome directly."""
        tracker = self.tracker
        task_id = tracker.add(name, None, running_on=self._here)
        if retries:
            fn = TaskCall(fn, task_id, self._emit, retries, retry_delay)
        thread = threading.current_thread()
        outer = getattr(thread, "_nbexec_sink", None)
        sink = self._sink
        sink.task_id = task_id
        thread._nbexec_sink = sink  # type: ignore[attr-defined]
        try:
            if deps:
                args, kwargs = map_structure(_Done.result, (args, kwargs), _is_done)
            efut = _Done(call_in_task_body(fn, args, kwargs), None)
        except Exception as exc:
            efut = _Done(None, exc)
        except BaseException:  # an interrupt: the task is over, not "running"
            tracker.finish(task_id, "cancelled", "interrupted")
            raise
        finally:
            thread._nbexec_sink = outer  # type: ignore[attr-defined]
        future = TaskFuture(self, task_id, efut, deps)
        self.futures.append(future)
        report_outcome(tracker, task_id, deps, efut._exc)
        return future

    # --- completion ----------------------------------------------------------------------------

    def _on_done(self, future: TaskFuture, efut: Any) -> None:
        if future._id in self._superseded and efut is not future._efut:
            return  # the stopped key of a timed-out attempt (core/_timeouts.py)
        tracker = self.tracker
        try:
            if efut.cancelled():
                tracker.finish(
                    future._id, "cancelled", upstream_reason(future._deps) or "cancelled"
                )
                return
            status = getattr(efut, "status", None)
            if status == "finished":
                tracker.finish(future._id, "success")
                return
            exc = efut.exception()
        except BaseException as error:  # a future that cannot even report its state
            tracker.finish(future._id, "failed", f"{type(error).__name__}: {error}")
            return
        report_outcome(tracker, future._id, future._deps, exc)

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
        import time

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
        if not open_futures:
            return
        for f in open_futures:
            self.tracker.finish(f._id, "cancelled", "interrupted")
        self.executor.interrupt([f._efut for f in open_futures])

    def cancel(self, futures: Iterable[TaskFuture] | None = None) -> int:
        """Cancel this run's tasks that have not ended (all of them, or those in ``futures``).

        Pending ones never start; running ones are stopped where the mode can stop them (threads
        at their next Python line, process-pool children killed and replaced, Dask keys
        cancelled and, on a cluster nbexec created, their threads interrupted). They are
        recorded "cancelled"; the run goes on and its other tasks finish. Returns how many.
        """
        targets = self.futures if futures is None else futures
        open_futures = [f for f in targets if f._run is self and f.state not in TERMINAL]
        if not open_futures:
            return 0
        for f in open_futures:
            self.tracker.finish(f._id, "cancelled", "cancelled")
        self.executor.interrupt([f._efut for f in open_futures])
        return len(open_futures)

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
        if todo and hasattr(todo[0]._efut, "client"):  # distributed futures: one gather for all
            try:
                values = self.executor.wait([f._efut for f in todo])
            except Exception:  # one by one, to name the task whose value cannot come back
                values = [f.result() for f in todo]
            for f, v in zip(todo, values):
                f._value = v  # kept: a value changed in the cell stays changed
        by_id = {id(f): f.result() for f in futures}
        return map_structure(lambda f: by_id.get(id(f), f), obj, _is_task_future)

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.tracker.snapshot().totals.items() if n)
        return f"<Run {self.tracker.info.get('mode', '?')}: {counts or 'no tasks'}>"


def _Timed(fn: Callable, timeout: float) -> Callable:
    """``fn`` stopped with ``TimeoutError`` once a call ran ``timeout`` seconds (picklable)."""
    return partial(call_with_timeout_of, fn, timeout)


class _InlineSink:
    """Where a task called inline (LocalExecutor) prints: its row of the tracker."""

    __slots__ = ("tracker", "task_id")

    def __init__(self, tracker: Tracker, task_id: int) -> None:
        self.tracker = tracker
        self.task_id = task_id

    def write_output(self, text: str) -> None:
        self.tracker.add_output(self.task_id, text)


_SCANNED = (TaskFuture, *_CONTAINERS)


def _may_hold_futures(args: tuple, kwargs: dict) -> bool:
    """Whether a TaskFuture may be inside the arguments (one is, or a container is)."""
    for a in args:
        if isinstance(a, _SCANNED):
            return True
    if kwargs:
        for v in kwargs.values():
            if isinstance(v, _SCANNED):
                return True
    return False


def _name_of(fn: Callable) -> str:
    name = getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        name = "lambda" if name == "<lambda>" else type(fn).__name__
    return name
