"""Nested structures of values: map or walk their leaves (lists, tuples, sets and dicts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["map_structure", "iter_leaves"]


def map_structure(fn: Callable[[Any], Any], obj: Any, is_leaf: Callable[[Any], bool]) -> Any:
    """Return ``obj`` with every leaf inside nested lists, tuples, sets and dicts replaced by ``fn(leaf)``.

    Containers without leaves are returned as they are (same object); containers with leaves are
    rebuilt with the same type (namedtuples included).
    """
    if is_leaf(obj):
        return fn(obj)
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [map_structure(fn, x, is_leaf) for x in obj]
        if all(a is b for a, b in zip(items, obj)):
            return obj
        if isinstance(obj, tuple) and hasattr(obj, "_fields"):
            return type(obj)(*items)
        return type(obj)(items)
    if isinstance(obj, dict):
        mapped = {k: map_structure(fn, v, is_leaf) for k, v in obj.items()}
        if all(mapped[k] is v for k, v in obj.items()):
            return obj
        out = type(obj)() if type(obj) is not dict else {}
        out.update(mapped)
        return out
    return obj


def iter_leaves(obj: Any, is_leaf: Callable[[Any], bool]) -> Iterator[Any]:
    """Yield every leaf inside nested lists, tuples, sets and dicts."""
    if is_leaf(obj):
        yield obj
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for x in obj:
            yield from iter_leaves(x, is_leaf)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from iter_leaves(x, is_leaf)
