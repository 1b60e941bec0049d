"""cloudpickle that keeps code objects' file names, so tracebacks from workers name the user's file.

cloudpickle (3.1+) renames every shipped code object's file to ``<dynamic-code>``: a failing task's
traceback then shows neither the file nor the source line. Loading needs only ``pickle``.
"""

from __future__ import annotations

import io
import pickle
import types
from collections import ChainMap
from typing import Any

import cloudpickle
from cloudpickle import cloudpickle as _cp

__all__ = ["dumps"]

_DYNAMIC = "<dynamic-code>"


def _code_reduce(code: types.CodeType) -> tuple:
    constructor, args = _cp._code_reduce(code)
    return constructor, tuple(code.co_filename if a == _DYNAMIC else a for a in args)


class _Pickler(cloudpickle.Pickler):
    dispatch_table = ChainMap({types.CodeType: _code_reduce}, cloudpickle.Pickler.dispatch_table)


def dumps(obj: Any, protocol: int = pickle.HIGHEST_PROTOCOL, buffer_callback: Any = None) -> bytes:
    """Like ``cloudpickle.dumps`` but shipped code keeps its ``co_filename``."""
    with io.BytesIO() as file:
        _Pickler(file, protocol=protocol, buffer_callback=buffer_callback).dump(obj)
        return file.getvalue()
