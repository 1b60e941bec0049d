"""What a rewritten ``%%executor`` cell calls at run time: task calls get futures, other calls values.

``nbexec.frontends.cellrewrite`` turns every call ``f(...)`` at a cell's top level into
``__nbexec_call__(f, ...)``. ``call`` passes the arguments unchanged to a task (a TaskFuture is a
dependency, never a wait), to ``nbexec.submit``/``nbexec.map``, to a run's or a future's own
methods and to the storing methods of builtin containers (``results.append(inc(i))`` stays
parallel); any other callable gets the futures inside its arguments (also nested in lists, tuples,
sets and dicts) replaced by their results, waiting for them there. Mutable containers are resolved
in place, so a list of futures passed to ``sum`` holds values afterwards, as the same object.
Builtins that look only at their arguments themselves (``len``, ``isinstance``...) get a future
passed directly resolved, but no container scanned: ``len(xs)`` in a loop stays O(1).
"""

from __future__ import annotations

import builtins
import functools
import sys
import types
from collections import deque
from typing import Any

from ..core.futures import TaskFuture
from ..core.run import Run
from ..core.tasks import Task
from ..core.tasks import map as _nbexec_map
from ..core.tasks import submit as _nbexec_submit
from . import celltraceback  # noqa: F401  # cells named "Cell In[n]" in the table's tracebacks

__all__ = [
    "call",
    "call0",
    "call1",
    "call2",
    "value",
    "resolve",
    "HELPERS",
    "CALL_NAME",
    "VALUE_NAME",
    "BUILTINS_NAME",
    "bind_builtins",
    "builtin_alias",
]

#: The names the rewritten cell calls ``call`` and ``value`` by (in the user's namespace, hidden
#: from ``%who``).
CALL_NAME = "__nbexec_call__"
VALUE_NAME = "__nbexec_value__"
BUILTINS_NAME = "__nbexec_builtins__"
#: ``call`` for calls of 0, 1 or 2 plain positional arguments (no ``*``/``**``, no keywords): the
#: common case, without the cost of packing ``*args``/``**kwargs``.
CALL_NAMES = ("__nbexec_call0__", "__nbexec_call1__", "__nbexec_call2__")

_SCAN = (TaskFuture, list, tuple, dict, set, frozenset)
#: Types whose objects hold no futures: an argument of one of them needs no scan (a set lookup
#: of the exact type costs less than ``isinstance`` against ``_SCAN``).
_PLAIN = frozenset(
    {int, float, str, bool, type(None), bytes, complex, range, slice, type}
    | {types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType}
)
#: Builtins whose result depends on their arguments themselves, never on what a container among
#: them holds (``len(xs)``, ``isinstance(xs, list)``): only a future passed directly is resolved,
#: so a long list is not scanned at every call.
_SHALLOW = frozenset(id(f) for f in (len, bool, isinstance, issubclass, type, callable, hasattr))
_METHOD_TYPES = (types.MethodType, types.BuiltinMethodType)
_OWNERS = (Task, Run, TaskFuture)
_STORES = (list, dict, set, deque)


def _takes_futures(fn: Any) -> bool:
    """Whether ``fn`` receives futures as they are (submits them, or only stores them)."""
    if type(fn) is Task or fn is _nbexec_submit or fn is _nbexec_map:
        return True
    if isinstance(fn, _METHOD_TYPES):
        owner = getattr(fn, "__self__", None)
        return isinstance(owner, _OWNERS) or type(owner) in _STORES
    return isinstance(fn, Task)


def call(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, the futures in the arguments resolved unless ``fn`` takes futures."""
    __tracebackhide__ = True
    for a in args:
        if isinstance(a, _SCAN):
            break
    else:
        if not kwargs or not any(isinstance(v, _SCAN) for v in kwargs.values()):
            if type(fn) is TaskFuture:
                fn = fn._as_value()
            return fn(*args, **kwargs)
    if type(fn) is TaskFuture:
        fn = fn._as_value()
    if _takes_futures(fn):
        return fn(*args, **kwargs)
    if id(fn) in _SHALLOW:
        return fn(*[value(a) for a in args], **{k: value(v) for k, v in kwargs.items()})
    return fn(*resolve(args), **resolve(kwargs))


def call0(fn: Any, /) -> Any:
    """``call(fn)``."""
    __tracebackhide__ = True
    if type(fn) is TaskFuture:
        fn = fn._as_value()
    return fn()


def call1(fn: Any, a: Any, /) -> Any:
    """``call(fn, a)``."""
    __tracebackhide__ = True
    if type(a) in _PLAIN:
        if type(fn) is not TaskFuture:
            return fn(a)
    elif id(fn) in _SHALLOW:  # len(xs): xs is not scanned
        return fn(a._as_value() if type(a) is TaskFuture else a)
    elif type(fn) is not TaskFuture and not isinstance(a, _SCAN):
        return fn(a)
    return call(fn, a)


def call2(fn: Any, a: Any, b: Any, /) -> Any:
    """``call(fn, a, b)``."""
    __tracebackhide__ = True
    if type(a) in _PLAIN and type(b) in _PLAIN:
        if type(fn) is not TaskFuture:
            return fn(a, b)
    elif id(fn) in _SHALLOW:  # isinstance(xs, list): xs is not scanned
        return fn(value(a), value(b))
    elif type(fn) is not TaskFuture and not isinstance(a, _SCAN) and not isinstance(b, _SCAN):
        return fn(a, b)
    return call(fn, a, b)


def value(obj: Any) -> Any:
    """The result of a future (waiting for it), any other object itself: for ``in`` tests, where
    containers compare by hash first."""
    __tracebackhide__ = True
    return obj._as_value() if type(obj) is TaskFuture else obj


def resolve(obj: Any, _seen: set | None = None) -> Any:
    """``obj`` with every TaskFuture inside replaced by its result (waiting for it).

    Lists, dicts and sets are changed in place and returned as the same object; tuples and
    frozensets with futures inside are rebuilt (namedtuples too). Other objects pass unchanged.
    """
    __tracebackhide__ = True
    if type(obj) is TaskFuture:
        return obj._as_value()
    if not isinstance(obj, _SCAN):
        return obj
    if _seen is None:
        _seen = set()
    if id(obj) in _seen:
        return obj
    _seen.add(id(obj))
    if isinstance(obj, list):
        for i, x in enumerate(obj):
            if isinstance(x, _SCAN):
                new = resolve(x, _seen)
                if new is not x:
                    obj[i] = new
        return obj
    if isinstance(obj, dict):
        for k, x in obj.items():
            if isinstance(x, _SCAN):
                new = resolve(x, _seen)
                if new is not x:
                    obj[k] = new
        return obj
    items = [resolve(x, _seen) if isinstance(x, _SCAN) else x for x in obj]
    if all(a is b for a, b in zip(items, obj)):
        return obj
    if isinstance(obj, set):
        obj.clear()
        obj.update(items)
        return obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*items)
    rebuild: Any = type(obj)  # a list, dict or other container type, never a TaskFuture
    return rebuild(items)


def builtin_alias(name: str) -> str:
    """The name a rewritten cell calls the builtin ``name`` by (see ``bind_builtins``)."""
    return f"__nbexec_{name}__"


def bind_builtins(names: tuple[str, ...]) -> None:
    """Run first in a rewritten cell: bind the aliases of ``names`` in the cell's namespace to the
    builtins, or, for a name the user's namespace gives another meaning, to ``call`` of that."""
    frame = sys._getframe(1)  # the cell's module-level frame: its locals are the user namespace
    ns, glob = frame.f_locals, frame.f_globals
    for name in names:
        builtin = getattr(builtins, name)
        meant = ns[name] if name in ns else glob.get(name, builtin)
        ns[builtin_alias(name)] = builtin if meant is builtin else functools.partial(call, meant)


#: What the rewritten cell calls, by name (the magic puts them in the user's namespace).
HELPERS: dict[str, Any] = {
    CALL_NAME: call,
    VALUE_NAME: value,
    BUILTINS_NAME: bind_builtins,
    **dict(zip(CALL_NAMES, (call0, call1, call2), strict=True)),
}
