"""LocalExecutor: every call runs at once, in the calling thread."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import FUTURES, INLINE, Executor, ExecutorInfo

__all__ = ["LocalExecutor"]


class LocalExecutor(Executor):
    """Runs each function synchronously and immediately in the calling thread (tracebacks and pdb work)."""

    mode = "local"

    @property
    def intake(self) -> str:
        """``INLINE``: a run calls its tasks itself, at once (a subclass with its own ``submit``
        gets them through ``submit_future``, which calls that ``submit``)."""
        return INLINE if type(self).submit is LocalExecutor.submit else FUTURES

    def submit(
        self, fn: Callable, /, *args: Any, extra_context: dict | None = None, **kwargs: Any
    ) -> Any:
        """Call ``fn(*args, **kwargs)`` now and return its value; ``extra_context`` is ignored."""
        return fn(*args, **kwargs)

    def wait(self, futures: Any) -> Any:
        """Return ``futures`` unchanged: every value is already computed."""
        return futures

    def describe(self) -> ExecutorInfo:
        return ExecutorInfo(mode="local", workers=1, threads=1)
