"""Prefect 1's executor interface: Executor, LocalExecutor, LocalDaskExecutor, DaskExecutor.

Only the base and LocalExecutor load eagerly; the Dask-backed executors import dask (and
distributed) when first used, so ``import nbexec`` stays light.
"""

from __future__ import annotations

from typing import Any

from .base import EventChannel, Executor, ExecutorInfo
from .local import LocalExecutor

__all__ = [
    "Executor",
    "EventChannel",
    "ExecutorInfo",
    "LocalExecutor",
    "LocalDaskExecutor",
    "DaskExecutor",
]


def __getattr__(name: str) -> Any:
    if name == "LocalDaskExecutor":
        from .local_dask import LocalDaskExecutor

        return LocalDaskExecutor
    if name == "DaskExecutor":
        from .dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module 'nbexec.executors' has no attribute {name!r}")
