"""nbexec: run notebook work on the executor you pick, and watch it live under the cell.

``import nbexec`` stays light: dask, distributed, IPython and ipywidgets load when first needed.
"""

from __future__ import annotations

from typing import Any

from .config.modes import MODES, executor_for
from .core.futures import TaskFailed, TaskFuture
from .core.history import runs
from .core.run import Run, current_run
from .core.tasks import Task, map, submit, task
from .executors import Executor, LocalExecutor
from .session import current, stop, use
from .session import ensure as _ensure

__version__ = "0.1.0"

__all__ = [
    "Executor", "LocalExecutor", "LocalDaskExecutor", "DaskExecutor", "MODES", "executor_for",
    "task", "Task", "submit", "map", "run", "Run", "TaskFuture", "TaskFailed", "current_run", "runs",
    "use", "current", "stop", "ExecutorPanel", "dashboard", "load_ipython_extension",
]  # fmt: skip


def run(executor_or_mode: Executor | str | None = None, **options: Any) -> Run:
    """A run on ``executor_or_mode``: an Executor object, a mode name, or None for the session's.

    A mode name makes (or reuses) the session executor for it, subject to ``NBEXEC_EXECUTOR``;
    an Executor object is used as given (started for the run if it is not started).
    """
    if isinstance(executor_or_mode, Executor):
        if options:
            raise ValueError("options go with a mode name, not with an Executor object")
        return Run(executor_or_mode)
    if executor_or_mode is not None and not isinstance(executor_or_mode, str):
        raise TypeError(
            f"run() takes a mode name, an Executor or None, got {type(executor_or_mode).__name__}"
        )
    return Run(_ensure(executor_or_mode, **options))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbexec``: register ``%executor`` and ``%%executor``."""
    from .frontends.magics import load_ipython_extension as load

    load(ipython)


def __getattr__(name: str) -> Any:
    if name == "LocalDaskExecutor":
        from .executors.local_dask import LocalDaskExecutor

        return LocalDaskExecutor
    if name == "DaskExecutor":
        from .executors.dask import DaskExecutor

        return DaskExecutor
    if name == "ExecutorPanel":
        from .widgets.panel import ExecutorPanel

        return ExecutorPanel
    if name == "dashboard":
        from .widgets.dashboard import dashboard

        return dashboard
    raise AttributeError(f"module 'nbexec' has no attribute {name!r}")
