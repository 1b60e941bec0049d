"""Route dask collections through a run, also when the run's own code is the first to import dask.

``route_dask(get)`` sets dask's ``scheduler`` config to a run's ``CountedGet`` until the run leaves it
(and dataframe shuffles to the "tasks" method, unless configured, so every mode runs one graph);
meanwhile the value's ``attach()``, if it has one, counts what the code gives a client itself.
If dask is not imported yet, a finder on ``sys.meta_path`` waits for ``import dask`` and sets it
right after dask's own import finishes; ``import nbexec`` never imports dask.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["route_dask"]

_lock = threading.Lock()
_waiting: list[list] = []  # [enter, exit-or-None] per run waiting for dask


def _on_dask_imported() -> None:
    with _lock:
        waiting = list(_waiting)
    for slot in waiting:
        if slot[0] is not None and slot[1] is None:
            slot[1] = slot[0]()


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _on_dask_imported()

    def __getattr__(self, name: str) -> Any:  # e.g. get_resource_reader, is_package
        return getattr(self._loader, name)


class _DaskFinder(importlib.abc.MetaPathFinder):
    """Finds ``dask`` as the other finders do, with a loader that reports when it is imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "dask":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_finder = _DaskFinder()


def _scheduler_setter(value: Any) -> Callable[[], Callable[[], None]]:
    def enter() -> Callable[[], None]:
        import dask

        settings: dict[str, Any] = {"scheduler": value}
        if dask.config.get("dataframe.shuffle.method", None) is None:
            # dask picks p2p when a Client exists, which fails off a cluster and changes the
            # graph: "tasks" works on every scheduler, so every mode runs the same graph.
            settings["dataframe.shuffle.method"] = "tasks"
        cm = dask.config.set(settings)
        cm.__enter__()
        attach = getattr(value, "attach", None)
        detach = attach() if attach is not None else None

        def leave() -> None:
            try:
                if detach is not None:
                    detach()
            finally:
                cm.__exit__(None, None, None)

        return leave

    return enter


def route_dask(value: Any) -> Callable[[], None]:
    """Make ``value`` dask's ``scheduler`` config (from ``import dask`` on) until the returned
    function is called (once; later calls do nothing)."""
    enter = _scheduler_setter(value)
    if "dask" in sys.modules:
        slot: list = [None, enter()]
    else:
        slot = [enter, None]
        with _lock:
            _waiting.append(slot)
            if _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)

    def leave() -> None:
        with _lock:
            if slot in _waiting:
                _waiting.remove(slot)
                if not _waiting and _finder in sys.meta_path:
                    sys.meta_path.remove(_finder)
            exit_, slot[1] = slot[1], None
            slot[0] = None
        if exit_ is not None:
            exit_()

    return leave
