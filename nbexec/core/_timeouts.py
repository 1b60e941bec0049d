"""Timeouts of tasks whose worker thread is blocked in C where the kernel cannot reach it (Dask).

A worker's watchdog raises ``TimeoutError`` in the task's thread at its deadline, but a thread
blocked in C (``time.sleep``, a socket read) sees it only when the call returns: the task would
hold its worker thread, and its run would wait, until then. The kernel watches the tasks with a
timeout of runs on such executors: an attempt still running ``MARGIN`` seconds past its timeout
is stopped as ``cancel()`` stops a task (``Executor.interrupt``: on a Dask cluster nbexec created
its thread leaves the worker's pool and a new one takes its place; on an external cluster it is
reported busy, ``%executor status``). With retries left, the kernel submits the next attempt
(and again what depends on the task, whose inputs were the stopped key) and the table says
"retrying"; on the last attempt the task fails now with ``TimeoutError``. The error names the
task, the attempt, the limit, the worker and where the task was (the worker's call stack).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from ..executors.base import map_structure
from ..pools._slimfuture import SlimFuture
from ..runtime._taskcall import TaskCall
from ._calls import wrapped
from ._runfuture import report_outcome
from .futures import _is_task_future
from .snapshot import TERMINAL

if TYPE_CHECKING:
    from ._runtype import RunLike as Run
    from .futures import TaskFuture

__all__ = ["watch", "MARGIN", "STACK_BOUND"]

#: Seconds past its timeout an attempt may still report "running" (its failure on the way back).
MARGIN = 0.5
#: Seconds the kernel waits for the worker's call stack of a timed-out task.
STACK_BOUND = 1.0
#: Frames of that stack shown in the error (the innermost ones).
FRAMES = 4
_TICK = 0.1


class _Entry:
    __slots__ = ("future", "timeout", "retries", "attempt", "since")

    def __init__(self, future: TaskFuture, timeout: float, retries: int) -> None:
        self.future = future
        self.timeout = timeout
        self.retries = retries
        self.attempt = 0  # the attempt seen running, and since when (time.time())
        self.since = 0.0


_cond = threading.Condition()
_watched: dict[int, _Entry] = {}  # id(future) -> entry
_thread: threading.Thread | None = None


def watch(future: TaskFuture, timeout: float, retries: int) -> None:
    """Stop each attempt of ``future`` that runs ``timeout`` seconds (plus ``MARGIN``) without
    ending: submit the next one while retries remain, else fail the task with ``TimeoutError``."""
    global _thread
    with _cond:
        _watched[id(future)] = _Entry(future, timeout, retries)
        if _thread is None:
            _thread = threading.Thread(target=_loop, name="nbexec-task-timeouts", daemon=True)
            _thread.start()
        _cond.notify()


def _loop() -> None:
    while True:
        with _cond:
            while not _watched:
                _cond.wait()
            entries = list(_watched.items())
        now = time.time()
        for ident, entry in entries:
            expired = False
            try:
                tracker = entry.future._run.tracker
                task_id = entry.future._id
                state = tracker.state(task_id)
                if state == "running":
                    record = tracker.record(task_id)
                    attempt = max(record.attempts, 1)
                    if attempt != entry.attempt:  # a new attempt: its clock starts
                        entry.attempt = attempt
                        first = attempt == 1 and record.started is not None
                        entry.since = record.started if first else now
                    expired = now - entry.since > entry.timeout + MARGIN
            except Exception:  # noqa: BLE001 - a broken entry is dropped, the loop goes on
                state = "failed"
            if state in TERMINAL:
                with _cond:
                    _watched.pop(ident, None)
            elif expired:
                try:
                    _stop_attempt(entry)
                except Exception:  # noqa: BLE001 - the executor may be stopping
                    with _cond:
                        _watched.pop(ident, None)
        time.sleep(_TICK)


def _stop_attempt(entry: _Entry) -> None:
    future, attempt = entry.future, entry.attempt
    run = future._run
    last = attempt > entry.retries
    error = TimeoutError(_message(run, future, attempt, entry.retries + 1, entry.timeout))
    if not last and _resubmit(run, future, attempt, error):
        return  # the next attempt's clock starts when it reports "running"
    efut = future._efut
    # What result() and the run's failure give from now on:
    future._efut = SlimFuture.finished(None, error)
    report_outcome(run.tracker, future._id, future._deps, error)
    with _cond:
        _watched.pop(id(future), None)
    _note_timed_out(run, efut)
    run.executor.interrupt([efut])


def _note_timed_out(run: Run, efut: Any) -> None:
    """The executor's busy report counts the key as timed out (not interrupted)."""
    key = run.executor.task_key(efut)
    if key is not None:
        run.executor.note_stop_reason([str(key)], "timed out")


def _message(run: Run, future: TaskFuture, attempt: int, attempts: int, timeout: float) -> str:
    """What the timed-out attempt was: task, attempt, limit, worker, and its innermost frames."""
    tracker = run.tracker
    key = tracker.key(future._id)
    worker, frames = _call_stack(run.executor, key)
    where = worker or tracker.record(future._id).where or "its worker"
    text = (
        f"task {tracker.name(future._id)!r} (attempt {attempt} of {attempts}) ran longer than "
        f"its timeout of {timeout:g} s on {where}"
    )
    if frames:
        text += "; it was at:\n" + "".join(frames).rstrip()
    return text


def _call_stack(executor: Any, key: str) -> tuple[str | None, list[str]]:
    """``(worker, innermost frames)`` of the thread running ``key`` (Dask ``call_stack``, bounded
    by ``STACK_BOUND``); ``(None, [])`` where it cannot be had."""
    worker, frames = executor.call_stack(key, STACK_BOUND)
    kept = [f for f in frames if not _machinery(f)]
    return worker, [f.replace("\n\t", "\n    ") for f in kept[-FRAMES:]]


_MACHINERY = ("/distributed/", "/dask/", "/threading.py", "/_nbexec_remote/", "/nbexec/runtime/")


def _machinery(frame: str) -> bool:
    """A frame of the worker's or nbexec's own code around the task."""
    head = frame.split("\n", 1)[0]
    return any(part in head for part in _MACHINERY)


def _resubmit(run: Run, future: TaskFuture, attempt: int, error: TimeoutError) -> bool:
    """Submit attempt ``attempt + 1`` of ``future`` and again its open dependents, then stop the
    old keys (a cancelled key cancels its dependents on the scheduler). False if it cannot."""
    plan = [(future, attempt)]
    replaced = {id(future)}
    for f in run.futures:
        if f._deps and f.state not in TERMINAL and any(id(d) in replaced for d in f._deps):
            plan.append((f, 0))
            replaced.add(id(f))
    submitted = {call[0]: call for call in run.retry_record.calls({f._id for f, _ in plan})}
    if len(submitted) < len(plan):
        return False
    summary = str(error).split("\n", 1)[0]
    run.tracker.retrying(future._id, attempt, f"TimeoutError: {summary}"[:300])
    old = []
    for f, done in plan:  # in submission order: a dependent's inputs are already the new keys
        old.append(run.resubmit(f, _call_of(run, submitted[f._id], done)))
    _note_timed_out(run, old[0])
    run.executor.interrupt(old)
    return True


def _call_of(run: Run, submitted: tuple, done: int) -> tuple:
    """``(TaskCall, args, kwargs, context)`` submitting a task again after ``done`` attempts, from
    how it was ``submitted`` (``RetryRecord.calls``)."""
    task_id, fn, name, args, kwargs, (tags, retries, delay, timeout), index = submitted
    fn = wrapped(fn, timeout, run._quiet)
    args, kwargs = map_structure(
        lambda f: f._efut if f._run is run else f.result(), (args, kwargs), _is_task_future
    )
    call = TaskCall(fn, task_id, run._emit, retries, delay, None, done)
    return call, args, kwargs, {"task_name": name, "task_index": index, "task_tags": tuple(tags)}


def _watched_count() -> int:
    """How many tasks are watched now (for tests)."""
    with _cond:
        return len(_watched)
