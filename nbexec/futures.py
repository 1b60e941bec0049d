"""Task futures: ``TaskFuture``, ``TaskFailed`` and how a task's traceback is shown."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from .snapshot import TERMINAL

if TYPE_CHECKING:
    from .run import Run

__all__ = ["TaskFuture", "TaskFailed"]


class TaskFailed(Exception):
    """A task of the run failed; ``__cause__`` is the task's own exception (its traceback kept)."""

    def __init__(self, task_name: str, key: str | None, error: BaseException, others: int = 0):
        self.task_name = task_name
        self.key = key
        self.error = error
        self.others = others
        message = f"task {task_name!r} failed: {type(error).__name__}: {error}"
        if others:
            message += f" ({others} more task{'s' if others > 1 else ''} failed)"
        super().__init__(message)

    def __reduce__(self):
        return (TaskFailed, (self.task_name, self.key, self.error, self.others))


def _is_task_future(x: Any) -> bool:
    return isinstance(x, TaskFuture)


def _future_failed(efut: Any) -> bool:
    status = getattr(efut, "status", None)
    if isinstance(status, str):  # distributed.Future
        return status in ("error", "cancelled", "lost")
    if not efut.done():
        return False
    return efut.cancelled() or efut.exception() is not None


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_LIBRARY_DIRS = tuple(
    os.path.join("site-packages", name, "") for name in ("dask", "distributed", "tornado")
) + (os.path.join("concurrent", "futures", ""), "_nbexec_remote.py")  # the task wrappers


def _user_traceback(exc: BaseException) -> BaseException:
    """Drop leading frames of nbexec and executor internals so the user's function comes first."""
    internals = (_PACKAGE_DIR, *_LIBRARY_DIRS)
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not any(part in filename for part in internals):
            break
        tb = tb.tb_next
    if tb is not None and tb is not exc.__traceback__:
        exc.__traceback__ = tb
    return exc


class TaskFuture:
    """The future of one task in a run."""

    __slots__ = ("_run", "_id", "_efut", "_deps", "__weakref__")

    def __init__(self, run: Run, task_id: int, efut: Any, deps: tuple[TaskFuture, ...] | None):
        self._run = run
        self._id = task_id
        self._efut = efut
        self._deps = deps

    @property
    def name(self) -> str:
        return self._run.tracker.name(self._id)

    @property
    def key(self) -> str:
        return self._run.tracker.key(self._id)

    @property
    def state(self) -> str:
        """One of "pending", "running", "retrying", "success", "failed", "cancelled"."""
        return self._run.tracker.state(self._id)

    def done(self) -> bool:
        return self.state in TERMINAL

    def result(self, timeout: float | None = None) -> Any:
        """The task's value; raises its exception if it failed, CancelledError if it was cancelled."""
        __tracebackhide__ = True
        run = self._run
        try:
            if run._lazy and not self._efut.done():
                run._drain()
            if self.state == "cancelled":
                raise CancelledError(self._cancel_reason())
            return self._efut.result(timeout=timeout)
        except KeyboardInterrupt:
            run.interrupt()
            raise
        except CancelledError:
            raise CancelledError(self._cancel_reason()) from None
        except Exception as exc:
            if getattr(self._efut, "status", None) == "finished" and not isinstance(
                exc, TimeoutError
            ):  # the task succeeded where it ran, but its value cannot come back (e.g. unpicklable)
                raise TaskFailed(self.name, self.key, exc) from exc
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception, or None if it succeeded."""
        try:
            self.result(timeout)
        except CancelledError:
            raise
        except Exception as exc:
            return exc
        return None

    def cancel(self) -> bool:
        """Cancel the task if it has not ended (a running one too, where its mode can stop it).

        True if it is cancelled now (or was already), False if it had already ended otherwise.
        See ``Run.cancel``.
        """
        return self._run.cancel([self]) == 1 or self.state == "cancelled"

    def cancelled(self) -> bool:
        """Whether the task was cancelled (by ``cancel()``, an interrupt, or a failed upstream)."""
        return self.state == "cancelled"

    @property
    def output(self) -> str:
        """What the task printed so far (stdout and stderr, as text); "" if nothing.

        Where tasks run in other processes it arrives with the task's result (Dask: with its
        events, a moment after the result).
        """
        return self._run.tracker.output(self._id)

    def _cancel_reason(self) -> str:
        record = self._run.tracker.record(self._id)
        return f"task {record.name!r} was cancelled" + (f": {record.error}" if record.error else "")

    def __repr__(self) -> str:
        return f"<TaskFuture {self.name!r} state={self.state}>"


class _Done:
    """An already finished future (LocalExecutor's work is done when submit returns)."""

    __slots__ = ("_value", "_exc")
    status = None

    def __init__(self, value: Any, exc: BaseException | None):
        self._value = value
        self._exc = exc

    def done(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def result(self, timeout: float | None = None) -> Any:
        if self._exc is not None:
            raise self._exc
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._exc

    def add_done_callback(self, fn: Callable) -> None:
        fn(self)


def _is_done(x: Any) -> bool:
    return type(x) is _Done
