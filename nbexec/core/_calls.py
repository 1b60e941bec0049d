"""What a run submits for a task: its name, its calls with their dependencies, its function wrapped.

A call's arguments may hold TaskFutures: those of the same run are its dependencies (they travel
as their executor futures, which the executor replaces by values); those of earlier runs are
replaced by their values here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ..executors.base import iter_leaves, map_structure
from ..runtime._taskcall import call_quietly, call_with_timeout_of
from .futures import TaskFuture, _is_task_future

if TYPE_CHECKING:
    from ._lanes import Call
    from ._runtype import RunLike

__all__ = ["may_hold_futures", "dependencies", "wrapped", "name_of"]

_SCANNED = (TaskFuture, list, tuple, dict, set, frozenset)


def dependencies(run: RunLike, args: tuple, kwargs: dict) -> Call:
    """``(args, kwargs, deps)``: ``deps`` are the TaskFutures of ``run`` the call waits for (or
    None), passed as their executor futures; TaskFutures of other runs become their values."""
    found = list(iter_leaves((args, kwargs), _is_task_future))
    if any(f._run is not run for f in found):  # a future of an earlier run: its value
        args, kwargs = map_structure(
            TaskFuture.result, (args, kwargs), lambda x: _is_task_future(x) and x._run is not run
        )
        found = [f for f in found if f._run is run]
    if not found:
        return args, kwargs, None
    args, kwargs = map_structure(lambda f: f._efut, (args, kwargs), _is_task_future)
    return args, kwargs, tuple(found)


def may_hold_futures(args: tuple, kwargs: dict) -> bool:
    """Whether a TaskFuture may be inside the arguments (one is, or a container is)."""
    for a in args:
        if isinstance(a, _SCANNED):
            return True
    if kwargs:
        for v in kwargs.values():
            if isinstance(v, _SCANNED):
                return True
    return False


def wrapped(fn: Callable, timeout: float | None, quiet: bool) -> Callable:
    """``fn`` stopped with ``TimeoutError`` once a call ran ``timeout`` seconds (enforced wherever
    it runs), and keeping what it prints to itself if ``quiet``; picklable."""
    if timeout:
        fn = partial(call_with_timeout_of, fn, timeout)
    if quiet:
        fn = partial(call_quietly, fn)
    return fn


def name_of(fn: Callable) -> str:
    """A task's default name: the function's ``__name__`` ("lambda" for lambdas)."""
    name = getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        name = "lambda" if name == "<lambda>" else type(fn).__name__
    return name
