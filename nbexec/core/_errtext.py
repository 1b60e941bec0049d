"""Error texts for the task table and ``TaskFailed``'s message: cut to a readable size, and a
failed task's traceback as it reads without nbexec.

The exception itself is never changed: it stays whole on the task's future.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable

__all__ = [
    "INTERNAL_PARTS",
    "MAX_ERROR_TEXT",
    "cut",
    "is_internal",
    "label_code_files",
    "traceback_text",
]

#: Characters of an error message (or traceback text) shown; longer ones keep head and tail.
MAX_ERROR_TEXT = 10_000

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Parts of the file names of frames that are nbexec's or its executors', not the user's.
INTERNAL_PARTS = (
    _PACKAGE_DIR,
    *(os.path.join("site-packages", name, "") for name in ("dask", "distributed", "tornado")),
    os.path.join("concurrent", "futures", ""),
    os.path.join("_nbexec_remote", ""),  # the task wrappers, also where nbexec is not installed
)

#: Labels for the file names of code a front end compiled (e.g. "Cell In[3]" for a notebook
#: cell), tried in order; None means "not mine". The core cannot ask IPython itself.
_labellers: list[Callable[[str], str | None]] = []


def cut(text: str | None, limit: int = MAX_ERROR_TEXT) -> str | None:
    """``text`` if it is at most ``limit`` characters, else its head and tail around a note."""
    if text is None or len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half:,} characters cut ...]\n{text[-half:]}"


def is_internal(filename: str) -> bool:
    """Whether a frame of ``filename`` is nbexec's, its wrappers' or its executors' machinery."""
    return any(part in filename for part in INTERNAL_PARTS)


def label_code_files(labeller: Callable[[str], str | None]) -> None:
    """Name frames of ``labeller``'s code files its way in traceback texts (once per labeller)."""
    if labeller not in _labellers:
        _labellers.append(labeller)


def _label(filename: str) -> str | None:
    for labeller in _labellers:
        try:
            label = labeller(filename)
        except Exception:  # a label is a nicety; the traceback text must come out
            label = None
        if label:
            return label
    return None


class _UserStack(traceback.StackSummary):
    """Frames as a cell's traceback shows them: ``Cell In[n], line k, in f`` and the source line,
    without column markers (frames rebuilt from another process carry no true columns)."""

    def format_frame_summary(self, frame_summary: traceback.FrameSummary) -> str:
        label = _label(frame_summary.filename)
        where = f'File "{frame_summary.filename}"' if label is None else label
        text = f"  {where}, line {frame_summary.lineno}, in {frame_summary.name}\n"
        if frame_summary.line:
            text += f"    {frame_summary.line.strip()}\n"
        return text


def _clean(te: traceback.TracebackException, seen: set[int]) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    frames = list(te.stack)
    kept = [f for f in frames if not is_internal(f.filename or "")] or frames[-1:]
    te.stack = _UserStack(kept)  # (from_list makes a plain StackSummary)
    for other in (te.__cause__, te.__context__, *(getattr(te, "exceptions", None) or ())):
        if other is not None:
            _clean(other, seen)


def traceback_text(exc: BaseException) -> str:
    """``exc`` and its chained exceptions as a traceback text that reads as without nbexec: no
    frames of nbexec, its wrappers, dask, distributed or concurrent.futures (the raising frame
    always stays), code files named as their front end names them (``Cell In[n], line k``)."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    _clean(te, set())
    return "".join(te.format())
