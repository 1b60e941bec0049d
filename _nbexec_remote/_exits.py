"""How a task ends other than by returning: nbexec's exceptions raised inside tasks, and
``contain``, which tells a task's own failure from an interrupt that must stop the work."""

from __future__ import annotations

import threading


class TaskExit(Exception):
    """The task's own code raised a BaseException that is not an Exception (``SystemExit``,
    ``KeyboardInterrupt``, ``GeneratorExit``...): the task fails with it as ``__cause__`` (also
    ``.exc``), and the worker running it goes on (Dask kills a worker on SystemExit)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc
        self.__cause__ = exc

    def __str__(self) -> str:
        text = str(self.exc)
        return f"the task raised {type(self.exc).__name__}" + (f": {text}" if text else "")


class TaskInterrupted(BaseException):
    """Raised inside a running task that nbexec interrupts (``interrupt``, a cancelled run, a
    kernel interrupt, leaving ``start()``), in a pool thread or a Dask worker thread.

    A BaseException, so ``except Exception`` in task code does not swallow it and a retrying
    task is not retried; not a KeyboardInterrupt, which distributed lets through to close the
    worker (any other BaseException fails only the task)."""


def _raised_by_code(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a ``raise`` statement (not from a signal between two lines)."""
    tb = exc.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        import dis

        return dis.opname[tb.tb_frame.f_code.co_code[tb.tb_lasti]] in ("RAISE_VARARGS", "RERAISE")
    except (IndexError, AttributeError):  # pragma: no cover - another interpreter
        return True


def contain(exc: BaseException) -> BaseException:
    """``exc`` as the task's failure: a ``TaskExit`` for a BaseException raised by the task's own
    code; ``exc`` itself for an Exception or an interrupt (nbexec's own, or a kernel interrupt
    reaching the main thread), which must stop the work rather than fail one task."""
    if isinstance(exc, Exception):
        return exc
    # By name too: a worker may hold two copies of this package (installed and imported).
    if type(exc).__name__ in ("TaskInterrupted", "TaskTimeout"):
        return exc
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        if not _raised_by_code(exc):
            return exc  # SIGINT
    return TaskExit(exc)


class TaskTimeout(BaseException):
    """Raised inside a task that ran past its timeout (a BaseException: ``except Exception`` in
    task code does not swallow it); the task wrapper turns it into ``TimeoutError``."""


class TaskNotStarted(Exception):
    """The executor stopped before this task started, so it did not run."""
