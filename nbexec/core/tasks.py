"""``@nbexec.task`` and the module-level ``submit``/``map``.

Inside an active run, calling a task submits it and returns a ``TaskFuture``. Outside any run, and
inside a running task's body, calling a task just calls the function.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable
from typing import Any, overload

from ..executors._tags import parse_resources
from ..runtime._taskcall import in_task_body, task_body
from .futures import TaskFuture
from .run import _name_of, current_run

__all__ = ["Task", "task", "submit", "map"]


def _check_tags(tags: Any) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise TypeError(
            f"tags must be a collection of strings such as ({tags!r},), not a single string"
        )
    try:
        tags = tuple(tags)
    except TypeError:
        raise TypeError(
            f"tags must be a collection of strings, got {type(tags).__name__}"
        ) from None
    for tag in tags:
        if not isinstance(tag, str):
            raise TypeError(f"every tag must be a string, got {tag!r}")
    parse_resources(tags)  # a malformed resource tag fails here, when the task is defined
    return tags


def _check_timeout(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout < 10**8  # also refuses nan and inf
    ):
        raise ValueError(f"timeout must be a number of seconds > 0 (or None), got {timeout!r}")
    return float(timeout)


class Task:
    """A function that runs as a tracked task inside a run and as a plain call elsewhere."""

    def __init__(self, fn: Callable, name: str | None = None, tags: Iterable[str] = (), retries: int = 0,
                 retry_delay: float = 0.0, timeout: float | None = None):  # fmt: skip
        if not callable(fn):
            raise TypeError(f"@task needs a callable, got {type(fn).__name__}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
        if (
            isinstance(retry_delay, bool)
            or not isinstance(retry_delay, (int, float))
            or retry_delay < 0
        ):
            raise ValueError(f"retry_delay must be a number of seconds >= 0, got {retry_delay!r}")
        self.timeout = _check_timeout(timeout)
        self.fn = fn
        self.body = task_body(fn)  # what runs as the task: an async def's coroutine is run
        self.name = name or _name_of(fn)
        self.tags = _check_tags(tags)
        self.retries = retries
        self.retry_delay = float(retry_delay)
        self.__nbexec_task__ = self
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        run = current_run()
        if run is None or in_task_body():
            return self.fn(*args, **kwargs)
        return run._submit(
            self.body, self.name, args, kwargs, self.tags, self.retries, self.retry_delay,
            timeout=self.timeout,
        )  # fmt: skip

    def map(self, *iterables: Iterable) -> list[Any]:
        """One call per element of the zipped iterables: TaskFutures in a run, values elsewhere."""
        run = current_run()
        if run is None or in_task_body():
            return [self.fn(*args) for args in zip(*iterables)]
        return run.map(self, *iterables)

    def __reduce__(self):
        # A task shipped to a worker is its plain function: nested calls there are plain calls,
        # and the worker needs nothing of nbexec.
        return (operator.itemgetter(0), ((self.fn,),))

    def __repr__(self) -> str:
        return f"<Task {self.name!r}>"


@overload
def task(fn: Callable) -> Task: ...
@overload
def task(*, name: str | None = None, tags: Iterable[str] = (), retries: int = 0,
         retry_delay: float = 0.0, timeout: float | None = None
         ) -> Callable[[Callable], Task]: ...  # fmt: skip


def task(fn=None, *, name=None, tags=(), retries=0, retry_delay=0.0, timeout=None):
    """Make ``fn`` a task: ``@task`` or ``@task(name=..., tags=..., retries=..., retry_delay=...,
    timeout=...)``.

    Tags follow Prefect 1: ``"dask-resource:GPU=1"`` becomes a Dask worker resource.
    ``timeout``: seconds an attempt may run; a longer one fails with ``TimeoutError`` (retried
    like any failure) and its worker is freed.
    """
    if fn is None:
        _check_timeout(timeout)
        return lambda f: Task(f, name=name, tags=tags, retries=retries, retry_delay=retry_delay,
                              timeout=timeout)  # fmt: skip
    return Task(fn, name=name, tags=tags, retries=retries, retry_delay=retry_delay, timeout=timeout)


def _require_run(what: str):
    run = current_run()
    if run is None:
        raise RuntimeError(
            f"nbexec.{what}() needs an active run: use it inside `with nbexec.run(...):` or an %%executor cell"
        )
    return run


def submit(fn: Callable, /, *args: Any, **kwargs: Any) -> TaskFuture | Any:
    """Submit ``fn(*args, **kwargs)`` to the current run (a plain call inside a running task)."""
    if in_task_body():
        return fn(*args, **kwargs)
    return _require_run("submit").submit(fn, *args, **kwargs)


def map(fn: Callable, *iterables: Iterable) -> list[Any]:  # noqa: A001 - mirrors the builtin
    """Submit ``fn`` once per element of the zipped iterables to the current run."""
    if in_task_body():
        return [fn(*args) for args in zip(*iterables)]
    return _require_run("map").map(fn, *iterables)
