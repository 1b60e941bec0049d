"""The user's function shipped by value inside tasks whose wrappers pickle by reference."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from ._stopping import run_task


class MapCall:
    """``fn(*args)`` behind the stop-flag check, as one picklable callable for ``client.map``.

    ``fn`` travels by value (``ByValue``), its bytes computed once however many tasks share it.
    """

    __slots__ = ("token", "fn")

    def __init__(self, token: str | None, fn: Callable):
        self.token = token
        self.fn = fn if type(fn) is ByValue else ByValue(fn)

    def __reduce__(self) -> tuple:
        return (MapCall, (self.token, self.fn))

    def __call__(self, *args: Any) -> Any:
        return run_task(self.token, self.fn, args, {})


_UNLOADED = object()


def _from_reversed(data: bytes) -> ByValue:
    return ByValue(_UNLOADED, data[::-1])


class ByValue:
    """Wraps ``obj`` so that any pickler (distributed tries plain ``pickle`` first) sends it by value.

    Pickles as its cloudpickle bytes, computed once, and loads them only when first called: the
    scheduler, which unpickles and re-pickles every task, never runs the user's code, nor needs
    what it imports, nor pickles it again. The bytes travel reversed: distributed pickles a task a
    second time, with cloudpickle, when its bytes contain ``__main__`` (a notebook function's do).
    Code keeps its file names (``nbexec.runtime._pickling``), so tracebacks name the user's file.
    nbexec's own wrappers inside pickle by reference (this package).
    """

    __slots__ = ("obj", "data")

    def __init__(self, obj: Any, data: bytes | None = None):
        self.obj = obj
        self.data = data

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = self.obj
        if obj is _UNLOADED:
            assert self.data is not None  # an unloaded ByValue always carries its bytes
            obj = self.obj = pickle.loads(self.data)
        return obj(*args, **kwargs)

    def __reduce__(self) -> tuple:
        data = self.data
        if data is None:  # pickling happens on the client, where nbexec is installed
            from nbexec.runtime._pickling import dumps

            data = self.data = dumps(self.obj, protocol=pickle.HIGHEST_PROTOCOL)
        return (_from_reversed, (data[::-1],))
