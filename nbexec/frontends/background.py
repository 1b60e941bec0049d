"""``%%executor MODE --background`` and ``%executor wait``: cells that do not wait for their tasks.

The cell's code runs now (its task calls submit at once), then the run is detached from the
kernel's thread and a daemon thread ends it once every task ended; the live table under the cell
keeps updating meanwhile. Names the cell bound to the run's futures become their values at the
first cell that runs after the run ended (IPython's ``pre_run_cell`` event) or at
``%executor wait``, which waits for every background run and shows their tables.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

from ..core.futures import TaskFailed, TaskFuture
from ..core.run import Run
from ..executors.base import iter_leaves
from ..runtime._taskcall import STREAM_ATTR
from .celltraceback import show_task_failure

__all__ = ["run_cell", "wait_all", "pending"]

_MISSING = object()
# What the background cell's output says where its live table cannot show (a saved notebook):
# fixed text, so nbval compares it; the run's static view is left by ``%executor wait``.
NOTE = "nbexec: background run - %executor wait shows its table"


class _Background:
    """A background run and the names its cell bound to futures (rebound once it ended)."""

    def __init__(self, run: Run, view: Any, bound: dict[str, Any]) -> None:
        self.run = run
        self.views = [view]
        self.bound = bound
        self.failure: TaskFailed | None = None
        self.ended = threading.Event()

    def finish(self) -> None:
        try:
            self.failure = self.run.end_detached()
        except BaseException as exc:  # noqa: BLE001 - kept for %executor wait
            self.failure = TaskFailed("(background run)", None, exc)
        finally:
            self.ended.set()
            for view in self.views:
                _freeze(view)


_pending: list[_Background] = []  # names not rebound yet
_unwaited: list[_Background] = []  # started since the last %executor wait (it reports them)
_hooked: set[int] = set()


def pending() -> list[Run]:
    """Background runs whose names are not rebound yet (running, or ended since the last cell)."""
    return [bg.run for bg in _pending]


def follow(run: Run, view: Any) -> bool:
    """Keep ``view`` (another live view of a background run) updating until the run ends."""
    for bg in _pending:
        if bg.run is run and not bg.ended.is_set():
            bg.views.append(view)
            return True
    return False


def _has_futures(value: Any) -> bool:
    return any(True for _ in iter_leaves(value, lambda x: isinstance(x, TaskFuture)))


def run_cell(shell: Any, executor: Any, cell: str, body: Any, last: Any, names: set[str], *,
             table: bool = True) -> Any:  # fmt: skip
    """Run the cell's code in a new run on ``executor`` and return without waiting for its tasks."""
    __tracebackhide__ = True
    from ..widgets.live import show_run

    _hook(shell)
    run = Run(executor)
    run.cell = cell
    run.route_output(cell_writer(shell))
    view = show_run(run, table=table, note=NOTE)
    ns = shell.user_ns
    before = dict(ns)
    value = None
    try:
        with _entered(run):
            exec(body, shell.user_global_ns, ns)
            if last is not None:
                value = eval(last, shell.user_global_ns, ns)
    except BaseException:
        view.finish()
        raise
    changed = {k for k, v in ns.items() if before.get(k, _MISSING) is not v}
    bound = {name: ns[name] for name in (changed | (names & ns.keys())) if _has_futures(ns[name])}
    bg = _Background(run, view, bound)
    _pending.append(bg)
    _unwaited.append(bg)
    threading.Thread(target=bg.finish, name="nbexec-background", daemon=True).start()
    return None if _has_futures(value) else value


def cell_writer(shell: Any) -> Any:
    """A function writing text under the cell running now, whichever cell runs when it is called
    and from whatever thread (ipykernel: with this cell's parent header; elsewhere: stdout)."""
    kernel = getattr(shell, "kernel", None)
    get_parent = getattr(kernel, "get_parent", None)
    parent = None
    if get_parent is not None:
        with contextlib.suppress(Exception):
            parent = get_parent()

    def write(text: str) -> None:
        # stderr where the task wrote it there and the text is shown as it is written (threads)
        err = getattr(threading.current_thread(), STREAM_ATTR, None) == "stderr"
        stream: Any = sys.stderr if err else sys.stdout
        while type(stream).__dict__.get("_nbexec_tee"):  # the stream behind nbexec's tee
            stream = stream._stream
        set_parent = getattr(stream, "set_thread_parent", None)
        if not parent or set_parent is None:
            stream.write(text)
            return
        token = set_parent(parent)
        try:
            stream.write(text)
        finally:
            stream.reset_thread_parent(token)

    return write


class _entered:
    """Enter ``run`` for the cell's code; on success detach it (it goes on), on error end it."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def __enter__(self) -> Run:
        return self.run.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.run.__exit__(exc_type, exc, tb)  # the cell's own code failed: stop its tasks
            return
        self.run.detach()


def _freeze(view: Any) -> None:
    """Stop a background cell's live view at the run's final state, without displaying anything
    (output from this thread would land in whatever cell runs now)."""
    try:
        view._stop.set()
        with view._lock:
            view._finished = True
        if view.table is not None:
            view.table.refresh(view.run.snapshot())
    except Exception:  # noqa: BLE001 - a view that cannot update must not break the kernel
        pass


def _hook(shell: Any) -> None:
    if id(shell) not in _hooked:
        shell.events.register("pre_run_cell", lambda *args: rebind_ended(shell))
        _hooked.add(id(shell))


def _rebind(shell: Any, bg: _Background) -> None:
    """Names still bound to what the background cell left there become their values."""
    ns = shell.user_ns
    for name, value in bg.bound.items():
        if ns.get(name, _MISSING) is value:
            try:
                ns[name] = bg.run.resolve(value)
            except Exception:  # noqa: BLE001 - keep the futures; %executor wait raises
                pass
    bg.bound = {}


def rebind_ended(shell: Any) -> None:
    """Before a cell runs: rebind the names of background runs that have ended."""
    for bg in list(_pending):
        if bg.ended.is_set():
            _pending.remove(bg)
            _rebind(shell, bg)


def wait_all(shell: Any) -> None:
    """``%executor wait``: wait for every background run started since the last wait, showing
    each one's table (the same outputs whether it had already ended or not), rebind the names,
    and raise ``TaskFailed`` for the first failure (oldest run first)."""
    __tracebackhide__ = True
    from ..widgets.live import show_run

    waiting = list(_unwaited)
    del _unwaited[: len(waiting)]
    failure = None
    try:
        for bg in waiting:
            view = show_run(bg.run)
            try:
                while not bg.ended.wait(0.1):
                    pass
            except KeyboardInterrupt:
                for other in waiting:
                    other.run.interrupt()
                raise
            finally:
                view.finish()
            if failure is None:
                failure = bg.failure
    finally:
        rebind_ended(shell)
    if failure is not None:
        show_task_failure(shell, failure)
        raise failure.with_traceback(getattr(failure.__cause__, "__traceback__", None))
