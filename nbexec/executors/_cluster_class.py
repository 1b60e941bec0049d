"""Cluster classes named by users: resolved safely, and LocalCluster told apart (by name or class).

Importable without distributed: names of LocalCluster are recognised as text, and anything else
is imported only when asked.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LOCAL_CLUSTER", "import_cluster_class", "is_local_cluster", "names_local_cluster"]

#: The default cluster class, as the executor line, the panel and the CLI name it.
LOCAL_CLUSTER = "distributed.LocalCluster"
_LOCAL_NAMES = frozenset(
    ("", LOCAL_CLUSTER, "dask.distributed.LocalCluster", "distributed.deploy.local.LocalCluster")
)


def import_cluster_class(name: str) -> type:
    """Import ``name`` (a dotted name) and return it if it is a ``distributed.deploy.Cluster`` subclass."""
    from distributed.deploy import Cluster

    obj: Any = None
    # Only the module part is imported (never ``name`` itself as a module: a class is an attribute).
    module_name, _, attr = name.rpartition(".")
    if module_name and all(part.isidentifier() for part in name.split(".")):
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            obj = None
    if not (isinstance(obj, type) and issubclass(obj, Cluster)):
        found = "nothing importable" if obj is None else repr(obj)
        raise ValueError(
            f"cluster_class {name!r} is not a distributed.deploy.Cluster subclass ({found}); "
            "a string must name a Cluster class such as 'distributed.LocalCluster' or "
            "'dask_jobqueue.SLURMCluster' (the Python API also accepts any callable)"
        )
    return obj


def names_local_cluster(name: str) -> bool:
    """True if ``name`` is one of the names of distributed's ``LocalCluster`` itself ("" is the
    default), not of a subclass: the executor line can leave such a cluster class out."""
    return name.strip() in _LOCAL_NAMES


def is_local_cluster(cls: Any) -> bool:
    """True for distributed's ``LocalCluster``, its subclasses and their dotted names ("" is the
    default, LocalCluster): the clusters nbexec sizes itself. A name that does not resolve to a
    cluster class is not one."""
    if isinstance(cls, str):
        if names_local_cluster(cls):
            return True
        try:
            cls = import_cluster_class(cls.strip())
        except ValueError:
            return False
    if not isinstance(cls, type):
        return False
    from distributed.deploy import LocalCluster

    return issubclass(cls, LocalCluster)
