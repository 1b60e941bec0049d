"""Task futures: ``TaskFuture``, ``TaskFailed`` and how a task's traceback is shown."""

from __future__ import annotations

import operator
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any

from ._errtext import cut, is_internal
from ._stdfuture import StdFutureContract
from .snapshot import TERMINAL

if TYPE_CHECKING:
    from ._runtype import RunLike as Run

__all__ = ["TaskFuture", "TaskFailed"]


class TaskFailed(Exception):
    """A task of the run failed; ``__cause__`` is the task's own exception (its traceback kept)."""

    def __init__(self, task_name: str, key: str | None, error: BaseException, others: int = 0):
        self.task_name = task_name
        self.key = key
        self.error = error
        self.others = others
        message = f"task {task_name!r} failed: {type(error).__name__}: {cut(str(error))}"
        if others:
            message += f" ({others} more task{'s' if others > 1 else ''} failed)"
        super().__init__(message)

    def __reduce__(self):
        return (TaskFailed, (self.task_name, self.key, self.error, self.others))


def _is_task_future(x: Any) -> bool:
    return isinstance(x, TaskFuture)


def _future_failed(future: TaskFuture) -> bool:
    """Whether ``future``'s executor future failed or was cancelled (its report may trail)."""
    return future._run.executor.future_status(future._efut) in ("error", "cancelled")


def _user_traceback(exc: BaseException) -> BaseException:
    """Drop leading frames of nbexec and executor internals so the user's function comes first."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        if not is_internal(tb.tb_frame.f_code.co_filename):
            break
        tb = tb.tb_next
    if tb is not None and tb is not exc.__traceback__:
        exc.__traceback__ = tb
    return exc


_NO_VALUE: Any = object()


def drop_internal_frames(exc: BaseException) -> BaseException:
    """Unlink the frames of nbexec and executor internals from ``exc``'s traceback, wherever they
    are (the cell's frames and the user's functions stay, the last frame always)."""
    kept = []
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_next is None or not is_internal(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    for a, b in zip(kept, kept[1:]):
        a.tb_next = b
    if kept:
        kept[-1].tb_next = None
        exc.__traceback__ = kept[0]
    return exc


class TaskFuture(StdFutureContract):
    """The future of one task in a run, with the ``concurrent.futures.Future`` API (it works with
    ``concurrent.futures.wait`` and ``as_completed``).

    Besides its own API (``result``, ``done``, ``state``, ``name``, ``key``, ``exception``), a
    future USED as a value acts as its result, waiting for it: operators, comparisons, truth tests,
    iteration, ``len``, indexing, containment, ``format``/``str`` and public attributes that are not
    part of the API. Identity, hashing and ``repr`` stay the future's own, so nbexec's dependency
    scan (``isinstance``, ``id``) never waits.
    """

    __slots__ = ("_run", "_id", "_efut", "_deps", "_value", "_raised", "__weakref__")

    def __init__(self, run: Run, task_id: int, efut: Any, deps: tuple[TaskFuture, ...] | None):
        self._run = run
        self._id = task_id
        self._efut = efut
        self._deps = deps
        self._value = _NO_VALUE
        # Whether result() raised the task's failure to the code that used its value: that code
        # has had its chance to handle it, so the run does not raise it again when it ends.
        self._raised = False
        self._watch = None

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
        value = self._value
        if value is not _NO_VALUE:
            return value
        run = self._run
        efut = None
        try:
            if self.state == "cancelled":
                raise CancelledError(self._cancel_reason())
            efut = self._efut
            if run._lazy and not efut.done():
                # A lazy ("sync") future runs the queued work up to itself, not the whole graph.
                run.executor.run_until(efut)
            value = self._value = efut.result(timeout=timeout)
            return value
        except KeyboardInterrupt:
            run.interrupt()
            raise
        except CancelledError:
            if efut is not None and self._efut is not efut and self.state != "cancelled":
                # The kernel stopped this attempt (a timeout) and put the next one, or the
                # timeout's error, in its place: that is what this future gives now.
                return self.result(timeout)
            raise CancelledError(self._cancel_reason()) from None
        except Exception as exc:
            if not isinstance(exc, TimeoutError) or self._efut.done():  # not a wait timing out
                self._raised = True
            if not run.executor.started and self.state == "success":
                raise RuntimeError(
                    f"task {self.name!r} succeeded, but its result stayed with the "
                    f"{run.tracker.info.get('mode', '')} executor, which has been stopped or "
                    "switched since; use the value in the cell that ran the task (names bound "
                    "there hold their results) or run the task again"
                ) from None
            if run.executor.future_status(self._efut) == "finished" and not isinstance(
                exc, TimeoutError
            ):  # the task succeeded where it ran, but its value cannot come back (e.g. unpicklable)
                raise TaskFailed(self.name, self.key, exc) from exc
            if not isinstance(exc, TimeoutError):  # the task's own error: its frames first
                raise _user_traceback(exc.with_traceback(exc.__traceback__.tb_next)) from None  # type: ignore[union-attr]
            raise

    def _as_value(self) -> Any:
        """The result where plain code uses the future as a value: ``result()``, except that a task
        cancelled because an upstream task failed raises the upstream's exception, as the
        upstream's call would have raised it in a cell without the magic."""
        __tracebackhide__ = True
        value = self._value
        if value is not _NO_VALUE:
            return value
        try:
            return self.result()
        except CancelledError:
            upstream = self._failed_upstream()
            if upstream is None:
                raise
        except Exception:
            upstream = self._failed_upstream()
            if upstream is not None:  # the pool gave this dependent the upstream's own error
                upstream._raised = True
            raise
        return upstream.result()  # raises its error (outside the except: no chained context)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The task's exception, or None if it succeeded; raises ``CancelledError`` if it was
        cancelled, ``TimeoutError`` if it did not end within ``timeout`` seconds."""
        raised = self._raised  # returned here, not raised: the run still reports it
        try:
            self.result(timeout)
        except CancelledError:
            raise
        except TimeoutError as exc:
            if not self._efut.done():  # the wait timed out, not the task
                raise
            return exc
        except Exception as exc:
            return exc
        finally:
            self._raised = raised
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

    def _failed_upstream(self) -> TaskFuture | None:
        """A failed task upstream of this one (then this one never ran), or None."""
        for dep in self._deps or ():
            state = dep.state
            if state == "cancelled":
                found = dep._failed_upstream()
                if found is not None:
                    return found
            elif state == "failed" or _future_failed(dep):  # (Dask's report may trail)
                return dep
        return None

    def _cancel_reason(self) -> str:
        record = self._run.tracker.record(self._id)
        return f"task {record.name!r} was cancelled" + (f": {record.error}" if record.error else "")

    def __repr__(self) -> str:
        return f"<TaskFuture {self.name!r} state={self.state}>"

    # --- used as a value: act as the result ------------------------------------------------------

    __hash__ = object.__hash__

    #: pandas leaves ``series * future`` to the future's reflected operator (which uses the
    #: result), rather than taking the future for a list (it iterates) or an object scalar.
    __pandas_priority__ = 10_000

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """numpy's operators and ufuncs (``np.int64(3) + future``, ``array * future``) on the
        results, not on the futures as objects."""
        __tracebackhide__ = True
        inputs = tuple(x._as_value() if type(x) is TaskFuture else x for x in inputs)
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(x._as_value() if type(x) is TaskFuture else x for x in out)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getattr__(self, name: str) -> Any:
        __tracebackhide__ = True
        if name.startswith("_"):  # protocols probed by IPython, pickle, numpy... stay the future's
            raise AttributeError(name)
        return getattr(self._as_value(), name)

    def __str__(self) -> str:
        __tracebackhide__ = True
        return str(self._as_value())

    def __format__(self, spec: str) -> str:
        __tracebackhide__ = True
        return format(self._as_value(), spec)

    def __bool__(self) -> bool:
        __tracebackhide__ = True
        return bool(self._as_value())

    def __len__(self) -> int:
        __tracebackhide__ = True
        return len(self._as_value())

    def __iter__(self) -> Any:
        __tracebackhide__ = True
        return iter(self._as_value())

    def __reversed__(self) -> Any:
        __tracebackhide__ = True
        return reversed(self._as_value())

    def __contains__(self, item: Any) -> bool:
        __tracebackhide__ = True
        return item in self._as_value()

    def __getitem__(self, key: Any) -> Any:
        __tracebackhide__ = True
        return self._as_value()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        __tracebackhide__ = True
        self._as_value()[key] = value

    def __delitem__(self, key: Any) -> None:
        __tracebackhide__ = True
        del self._as_value()[key]

    def __index__(self) -> int:
        __tracebackhide__ = True
        return operator.index(self._as_value())

    def __int__(self) -> int:
        __tracebackhide__ = True
        return int(self._as_value())

    def __float__(self) -> float:
        __tracebackhide__ = True
        return float(self._as_value())

    def __complex__(self) -> complex:
        __tracebackhide__ = True
        return complex(self._as_value())

    def __round__(self, ndigits: int | None = None) -> Any:
        __tracebackhide__ = True
        return round(self._as_value(), ndigits)

    def __await__(self) -> Any:
        """``await future`` in an async cell: wait without blocking the event loop."""
        import asyncio

        efut = self._efut
        if self._value is _NO_VALUE and not self._run._lazy:
            if not efut.done():
                loop = asyncio.get_running_loop()
                waiter = loop.create_future()

                def wake(_: Any) -> None:
                    loop.call_soon_threadsafe(lambda: waiter.done() or waiter.set_result(None))  # type: ignore[func-returns-value]

                efut.add_done_callback(wake)
                yield from waiter.__await__()
        return self._as_value()


def _unary(op: Callable) -> Callable:
    def method(self: TaskFuture) -> Any:
        __tracebackhide__ = True
        return op(self._as_value())

    return method


def _binary(op: Callable, reflected: bool) -> Callable:
    if reflected:

        def method(self: TaskFuture, other: Any) -> Any:
            __tracebackhide__ = True
            return op(other, self._as_value())

    else:

        def method(self: TaskFuture, other: Any) -> Any:
            __tracebackhide__ = True
            return op(self._as_value(), other)

    return method


for _name in ("neg", "pos", "abs", "invert"):
    setattr(TaskFuture, f"__{_name}__", _unary(getattr(operator, _name)))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(TaskFuture, f"__{_name}__", _binary(getattr(operator, _name), False))
for _name in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "pow", "lshift",
              "rshift", "and", "xor", "or"):  # fmt: skip
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(TaskFuture, f"__{_name}__", _binary(_op, False))
    setattr(TaskFuture, f"__r{_name}__", _binary(_op, True))
for _prefix, _reflected in (("", False), ("r", True)):
    setattr(TaskFuture, f"__{_prefix}divmod__", _binary(divmod, _reflected))
