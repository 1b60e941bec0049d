"""``%executor runs``, ``%executor show [N]`` and ``%executor retry``: the kernel's runs from IPython.

Front-end code (it displays and rebinds names in the user's namespace) on top of
``nbexec.core.history``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import session
from ..core import history
from ..core.futures import TaskFailed, TaskFuture
from ..core.render import RunView
from ..executors.base import iter_leaves
from .celltraceback import show_task_failure

__all__ = ["COMMANDS", "run_command", "runs_text"]

COMMANDS = ("runs", "show", "retry", "wait")


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def runs_text() -> str:
    """The kernel's runs as a text table: number, mode, state, counts, elapsed, cell."""
    rows = [("#", "mode", "state", "tasks", "elapsed", "cell")]
    for number, run in enumerate(history.runs(), 1):
        info = history.describe(run)
        counts = ", ".join(f"{n} {s}" for s, n in info["counts"].items()) or "no tasks"
        cell = info["cell"]
        if len(cell) > 40:
            cell = cell[:37] + "..."
        rows.append(
            (str(number), info["mode"], info["state"], counts, _seconds(info["elapsed"]), cell)
        )
    if len(rows) == 1:
        return "no runs yet"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows
    ).rstrip()


def _pick(words: list[str]) -> Any:
    """The run ``words`` name (``show 2``: the second listed), by default the last one."""
    from IPython.core.error import UsageError

    runs = history.runs()
    if not runs:
        raise UsageError("%executor: no runs yet")
    if len(words) == 1:
        return runs[-1]
    try:
        number = int(words[1])
    except ValueError:
        number = 0
    if len(words) > 2 or not 1 <= number <= len(runs):
        raise UsageError(
            f"%executor {words[0]} takes a run number from `%executor runs` (1 to {len(runs)})"
        )
    return runs[number - 1]


def run_command(shell: Any, words: list[str]) -> Any:
    """Carry out ``%executor runs|show [N]|retry [N]``."""
    from IPython.core.error import UsageError

    command = words[0]
    if command == "wait":
        if len(words) > 1:
            raise UsageError("%executor wait takes no options")
        from . import background

        background.wait_all(shell)
        return None
    if command == "runs":
        if len(words) > 1:
            raise UsageError("%executor runs takes no options")
        print(runs_text())
        return None
    run = _pick(words)
    if command == "show":
        return _show(run)
    return _retry(shell, run)


def _show(run: Any) -> None:
    from IPython.display import display

    if run.active or not run.tracker.snapshot().finished:
        from ..widgets.live import show_run
        from . import background

        view = show_run(run)
        if not background.follow(run, view):  # a run this thread waits for: its cell ends it
            view.finish()
        return
    display(run.table)


# ``run.table`` displayed while its run goes on (e.g. after a page reload) is its live table.
RunView.live_display = _show


def _has_futures(value: Any) -> bool:
    return any(True for _ in iter_leaves(value, lambda x: isinstance(x, TaskFuture)))


def _retry(shell: Any, run: Any) -> None:
    __tracebackhide__ = True
    executor = run.executor if run.executor.started else session.ensure(None)
    new = history.plan_retry(run, executor)
    if not new.retry_record.source:
        print("nothing to retry: the run has no failed or cancelled tasks")
        return
    from ..widgets.live import show_run

    view = show_run(new)
    failure: TaskFailed | None = None
    try:
        with new:
            history.resubmit(new)
    except TaskFailed as exc:
        failure = exc
    finally:
        view.finish()
    ns = shell.user_ns
    hidden = getattr(shell, "user_ns_hidden", {})
    for name, value in list(ns.items()):
        if name.startswith("_") or name in hidden or not _has_futures(value):
            continue
        with contextlib.suppress(Exception):
            ns[name] = history.rebind_retried(new, value)
    if failure is not None:
        show_task_failure(shell, failure)
        raise failure.with_traceback(getattr(failure.__cause__, "__traceback__", None))
