"""The kernel's runs (``nbexec.runs()``) and re-running what failed (``Run.retry``).

Every run is registered when it starts. While it goes on the registry holds it; once it ended
the registry keeps only a weak reference to it and a light copy (``settle``): the run's status
model (``tracker``, which holds no results) and, for the tasks that failed or were cancelled,
their futures without upstream links and what ``retry`` needs to submit them again (function,
arguments, options). Results of tasks that succeeded are held there only where a failed task
needs them as an argument; everything else lives exactly as long as the user's names hold it.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Container, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..executors.base import map_structure
from ..pools._slimfuture import SlimFuture
from .futures import TaskFuture, _is_task_future

if TYPE_CHECKING:
    from ..executors.base import Executor
    from ._runtype import RunLike as Run

__all__ = ["runs", "register", "settle", "plan_retry", "rebind_retried", "MAX_RUNS", "RetryRecord"]

#: Runs the registry remembers (the oldest are forgotten first).
MAX_RUNS = 100
_RETRYABLE = ("failed", "cancelled")


class RetryRecord:
    """What ``retry`` needs of a run (``Run.retry_record``).

    ``given``: while the run goes on, how its tasks were submitted, as the user gave them:
    ``(task id, fn, name, args, kwargs, tags, retries, retry_delay, timeout)`` per task and
    ``(task ids, fn, name, [args, ...], {}, tags, retries, retry_delay, timeout)`` per map.
    ``specs``: once it ended, ``{task id: (fn, name, args, kwargs, (tags, retries, retry_delay,
    timeout))}`` of its failed and cancelled tasks. A retry run holds in ``source`` what it re-submits,
    the retried run's ``tracker`` and ``retried`` (``{old task id: new TaskFuture}``).
    """

    __slots__ = ("given", "specs", "source", "tracker", "retried")

    def __init__(self, specs: dict[int, tuple] | None = None) -> None:
        self.given: list[tuple] = []
        self.specs: dict[int, tuple] | None = specs
        self.source: dict[int, tuple] | None = None
        self.tracker: Any = None
        self.retried: dict[int, TaskFuture] = {}

    def calls(self, wanted: Container[int]) -> Iterator[tuple]:
        """How the tasks in ``wanted`` were submitted, from ``given``: ``(task id, fn, name, args,
        kwargs, (tags, retries, retry_delay, timeout), index)`` per call (index: in its map)."""
        for ids, fn, name, args, kwargs, *options in self.given:
            if isinstance(ids, int):
                if ids in wanted:
                    yield ids, fn, name, args, kwargs, tuple(options), None
                continue
            for index, (task_id, items) in enumerate(zip(ids, args)):  # a map: args per task
                if task_id in wanted:
                    yield task_id, fn, name, tuple(items), kwargs, tuple(options), index


class _Entry:
    __slots__ = ("strong", "ref", "light")

    def __init__(self, run: Run) -> None:
        self.strong: Run | None = run
        self.ref: weakref.ref | None = None
        self.light: Run | None = None

    def get(self) -> Run | None:
        if self.strong is not None:
            return self.strong
        run = self.ref() if self.ref is not None else None
        return run if run is not None else self.light


_entries: list[_Entry] = []
_by_run: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_to_clear: list[BaseException] = []


def register(run: Run) -> None:
    """Remember ``run`` (held until ``settle``)."""
    if _to_clear:
        _clear_pending()
    with _lock:
        if run in _by_run:
            return
        entry = _Entry(run)
        _entries.append(entry)
        _by_run[run] = entry
        del _entries[:-MAX_RUNS]


def settle(run: Run) -> None:
    """``run`` ended: keep a weak reference and a light copy instead of the run itself."""
    with _lock:
        entry = _by_run.get(run)
    if entry is None or entry.strong is None:
        return
    specs = _retry_specs(run)
    run.retry_record.specs = specs
    entry.light = _light_copy(run, specs)
    entry.ref = weakref.ref(run)
    entry.strong = None


def runs() -> list[Run]:
    """The kernel's runs, oldest first (finished ones as light copies once nothing holds them)."""
    if _to_clear:
        _clear_pending()
    with _lock:
        entries = list(_entries)
    return [run for run in (e.get() for e in entries) if run is not None]


def open_runs() -> list[Run]:
    """The runs that have not ended, in any thread (background runs included), oldest first."""
    with _lock:
        entries = list(_entries)
    return [run for run in (e.strong for e in entries) if run is not None and run.active]


# --- what a retry needs ----------------------------------------------------------------------


class _Upstream:
    """In a kept task's arguments: the failed or cancelled task ``task_id`` of the same run."""

    __slots__ = ("task_id",)

    def __init__(self, task_id: int) -> None:
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"<upstream task {self.task_id}>"


def _is_upstream(x: Any) -> bool:
    return type(x) is _Upstream


def _retry_specs(run: Run) -> dict[int, tuple]:
    """``{task_id: (fn, name, args, kwargs, options)}`` of the run's failed and cancelled tasks,
    with TaskFutures in the arguments replaced by their values (succeeded) or ``_Upstream``."""
    tracker = run.tracker
    given = run.retry_record.given
    states = tracker._state  # the columns: no object per task is made here
    if not any(s in _RETRYABLE for s in set(states)):
        given.clear()
        return {}
    bad = {i for i, s in enumerate(states) if s in _RETRYABLE}
    specs = {
        task_id: (fn, name, args, kwargs, options)
        for task_id, fn, name, args, kwargs, options, _ in run.retry_record.calls(bad)
    }
    given.clear()

    def detach(f: TaskFuture) -> Any:
        if f._id in bad and f._run is run:
            return _Upstream(f._id)
        efut = f._efut
        if f._run.executor.dask_keeps_results:  # the value stays where the executor runs
            return efut
        return efut.result()

    for task_id, (fn, name, args, kwargs, options) in list(specs.items()):
        args, kwargs = map_structure(detach, (args, kwargs), _is_task_future)
        specs[task_id] = (fn, name, args, kwargs, options)
    return specs


def _light_copy(run: Run, specs: dict[int, tuple]) -> Run:
    """A Run sharing ``run``'s status model, holding only its failed and cancelled futures."""
    light = run.light_copy(RetryRecord(specs))
    futures = []
    for f in run.futures:
        if f._id in specs:
            try:
                error = f._efut.exception(timeout=0) if f.state == "failed" else None
            except BaseException as exc:  # noqa: BLE001 - cancelled, or gone with its executor
                error = exc if f.state == "failed" else None
            if error is not None and not _drop_internal_locals(error):
                _to_clear.append(error)  # frames still running (e.g. the run's __exit__): later
            futures.append(TaskFuture(light, f._id, SlimFuture.finished(None, error), None))
    light.futures = futures
    return light


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Part of the file names of the task wrappers' frames (``_nbexec_remote``'s modules).
_REMOTE_PART = os.path.join("_nbexec_remote", "")


def _drop_internal_locals(error: BaseException) -> bool:
    """Clear the locals of nbexec's finished frames that ``error``'s traceback keeps alive (they
    hold the run, hence every result); the user's frames are kept for debugging. False if some
    of them are still executing."""
    tb = error.__traceback__
    seen: set[int] = set()
    done = True
    while tb is not None:
        frame: Any = tb.tb_frame
        while frame is not None and id(frame) not in seen:
            seen.add(id(frame))
            name = frame.f_code.co_filename
            if name.startswith(_PACKAGE_DIR) or _REMOTE_PART in name:
                try:
                    frame.clear()
                except RuntimeError:  # still executing
                    done = False
            frame = frame.f_back
        tb = tb.tb_next
    return done


def _clear_pending() -> None:
    """Retry ``_drop_internal_locals`` for errors whose frames were still executing."""
    pending = list(_to_clear)
    _to_clear.clear()
    _to_clear.extend(e for e in pending if not _drop_internal_locals(e))


R = TypeVar("R", bound="Run")


def plan_retry(run: R, executor: Executor | None = None) -> R:
    """A new (not yet entered) run that ``resubmit`` fills with ``run``'s failed and cancelled
    tasks; on ``executor``, else on the one ``run`` used."""
    if run.active:
        raise RuntimeError("this run is still going; wait for it (or cancel it) before retry()")
    record = run.retry_record
    if record.specs is None:
        settle(run)
        if record.specs is None:
            record.specs = _retry_specs(run)
    new = type(run)(executor if executor is not None else run.executor)
    new.cell = run.cell
    new.retry_record.source = record.specs  # no reference to ``run``: it may go
    new.retry_record.tracker = run.tracker
    return new


def resubmit(new: Run) -> dict[int, TaskFuture]:
    """Inside ``new`` (active): submit the failed and cancelled tasks of the run it retries again,
    in submission order; dependents get the new futures. Returns ``{old task id: new future}``."""
    mapping: dict[int, TaskFuture] = {}
    specs = new.retry_record.source or {}
    for task_id in sorted(specs):
        fn, name, args, kwargs, (tags, retries, delay, timeout) = specs[task_id]
        args, kwargs = map_structure(lambda u: mapping[u.task_id], (args, kwargs), _is_upstream)
        mapping[task_id] = new._submit(
            fn, name, args, kwargs, tags, retries, delay, timeout=timeout
        )
    new.retry_record.retried = mapping
    return mapping


def rebind_retried(new: Run, obj: Any) -> Any:
    """``obj`` with the old run's retried TaskFutures replaced by the new ones' results (or the
    new futures, where they failed again); other values kept."""
    mapping, tracker = new.retry_record.retried, new.retry_record.tracker

    def swap(f: TaskFuture) -> Any:
        if f._run.tracker is tracker and f._id in mapping:
            return mapping[f._id]
        return f

    swapped = map_structure(swap, obj, _is_task_future)
    return new.resolve(swapped)


def describe(run: Run) -> dict[str, Any]:
    """One line of ``%executor runs``: mode, cell, state, counts, elapsed."""
    snap = run.snapshot()
    totals = {s: n for s, n in snap.totals.items() if n}
    if not snap.finished or run.active:
        state = "running"
    elif totals.get("failed"):
        state = "failed"
    elif totals.get("cancelled"):
        state = "cancelled"
    else:
        state = "finished"
    cell = (run.cell or "").strip().splitlines()
    return {
        "mode": snap.info.get("mode", "?"),
        "cell": cell[0] if cell else "",
        "state": state,
        "counts": totals,
        "elapsed": snap.elapsed,
        "started": run.tracker._t0 or time.time(),
    }
