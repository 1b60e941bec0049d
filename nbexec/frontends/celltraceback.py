"""Tracebacks as IPython users read them: cells named ``Cell In[n]`` in the task table's
traceback texts, and a cell's ``TaskFailed`` shown with the task's frames once.

The core formats a failed task's traceback without IPython; this module lends it IPython's names
for the code files of cells (``<ipython-input-…>`` in a terminal, ipykernel's temporary files in
a notebook). Importing it registers the labeller; the magic's modules import it.
"""

from __future__ import annotations

from typing import Any

from ..core._errtext import label_code_files
from ..core.futures import TaskFailed

__all__ = ["cell_label", "show_task_failure"]


def cell_label(filename: str) -> str | None:
    """``"Cell In[n]"`` for the code file of IPython cell ``n``, else None."""
    from IPython import get_ipython

    shell = get_ipython()
    name_of = getattr(getattr(shell, "compile", None), "format_code_name", None)
    data = name_of(filename) if name_of is not None else None
    return f"{data[0]} {data[1]}" if data else None


def show_task_failure(shell: Any, exc: TaskFailed) -> None:
    """Let IPython show ``exc`` as a plain cell shows the task's own error: the task's traceback
    once (its cause's), then the TaskFailed line; not the cause and then the same frames again."""

    def render() -> list[str]:
        tb = shell.InteractiveTB
        cause = exc.__cause__
        if cause is None:
            return tb.structured_traceback(type(exc), exc, exc.__traceback__)
        shown = tb.structured_traceback(type(cause), cause, cause.__traceback__)
        return [*shown, "", *tb.get_exception_only(type(exc), exc)]

    exc._render_traceback_ = render  # type: ignore[attr-defined]  # IPython's per-exception hook


label_code_files(cell_label)
