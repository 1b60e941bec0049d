"""A dask graph as nbexec runs it: materialised, its tasks counted by prefix, persisted data filled in.

A collection persisted on a ``distributed.Client`` holds futures; once dask optimises a graph built on
it, the graph only names their keys. A scheduler other than that client's (dask's local ones, another
cluster) would fail with "Missing dependency"; here those keys' data is gathered from the client that
holds them and put in the graph as data, so the graph computes anywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "materialize",
    "prefix_counts",
    "fill_persisted",
    "PersistedDataError",
    "unused_clients",
]


class PersistedDataError(RuntimeError):
    """A graph needs data persisted on a Dask client that cannot give it back."""


def materialize(dsk: Any, keys: Any = None) -> dict:
    """The graph of ``dsk`` (an Expr, HighLevelGraph or mapping) as a dict of dask task nodes.

    With ``keys``, only the tasks ``keys`` need are kept (dask's schedulers run no others), and
    trivial alias chains between tasks are collapsed (dask's ``resolve_aliases``). An alias of
    data is kept as a task: data persisted in the kernel is a data node of the graph, data
    persisted on a cluster is a key the graph lacks, and either way the alias is one task, so a
    graph counts the same in every mode.
    """
    from dask._task_spec import DataNode, convert_legacy_graph, resolve_aliases
    from dask.core import flatten, reverse_dict

    if not isinstance(dsk, Mapping):
        dsk = dsk.__dask_graph__()
    graph = convert_legacy_graph(dict(dsk))
    if keys is None or not graph:
        return graph
    wanted = set(flatten(keys) if isinstance(keys, list) else [keys])
    graph = _cull(graph, wanted)
    data = {k: node for k, node in graph.items() if isinstance(node, DataNode)}
    tasks = {k: node for k, node in graph.items() if k not in data}
    if not tasks:
        return graph
    dependents = reverse_dict({k: node.dependencies for k, node in graph.items()})
    return {**data, **resolve_aliases(tasks, wanted, dependents)}


def _cull(graph: dict, keys: set) -> dict:
    """``graph`` without the nodes ``keys`` do not need, in the graph's order."""
    needed: set = set()
    work = [k for k in keys if k in graph]
    while work:
        key = work.pop()
        if key in needed:
            continue
        needed.add(key)
        work.extend(dep for dep in graph[key].dependencies if dep in graph)
    if len(needed) == len(graph):
        return graph
    return {k: node for k, node in graph.items() if k in needed}


def prefix_counts(graph: dict) -> dict[str, list]:
    """``{prefix: [keys]}`` of the graph's tasks, in the graph's order (data nodes are not tasks).

    Prefixes are dask's ``key_split``, as dask's progress bars and dashboard show them.
    """
    from dask._task_spec import DataNode
    from dask.utils import key_split

    out: dict[str, list] = {}
    for key, node in graph.items():
        if isinstance(node, DataNode):
            continue
        name = key_split(key)
        keys = out.get(name)
        if keys is None:
            keys = out[name] = []
        keys.append(key)
    return out


def _missing(graph: dict, keys: Any) -> set:
    from dask.core import flatten

    needed: set = set(flatten(keys) if isinstance(keys, list) else [keys])
    for node in graph.values():
        deps = getattr(node, "dependencies", None)
        if deps:
            needed.update(deps)
    return needed.difference(graph)


def _clients(first: Any = None) -> list:
    """Live distributed clients of this process: ``first``, then the default, then the others."""
    if "distributed" not in sys.modules:
        return []
    from distributed.client import _get_global_client, _global_clients

    found = [first] if first is not None else []
    default = _get_global_client()
    if default is not None and default not in found:
        found.append(default)
    for client in list(_global_clients.values()):
        if client not in found:
            found.append(client)
    return [c for c in found if getattr(c, "status", None) in ("running", "newly-created")]


def unused_clients(session_client: Any = None) -> list[str]:
    """Notes on the open clients dask does not use: made with ``set_as_default=False``, so
    neither ``.compute()`` nor ``%%executor dask`` runs on them; each says how to use it."""
    if "distributed" not in sys.modules:
        return []
    from distributed import Client
    from distributed.client import _get_global_client

    default = _get_global_client()
    notes = []
    for client in list(Client._instances):
        if client is default or client is session_client or client.asynchronous:
            continue
        if getattr(client, "status", None) not in ("running", "newly-created"):
            continue
        try:
            address = client.scheduler.address  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - closing
            continue
        notes.append(
            f"note: {_describe(client)} is not dask's default Client (set_as_default=False): "
            f"neither .compute() nor %%executor dask runs on it; to run cells there use "
            f"'%executor dask --address {address}', or make it the default "
            "(with client.as_current(): ... in a cell, or Client(..., set_as_default=True))"
        )
    return sorted(notes)


def _describe(client: Any) -> str:
    try:
        address = client.scheduler.address
    except Exception:  # noqa: BLE001 - a closed client may have no scheduler comm
        address = None
    if address is None:  # closed: the address it was started with
        start = getattr(client, "_start_arg", None)
        address = start if isinstance(start, str) else getattr(start, "scheduler_address", None)
    return f"Client(scheduler={address!r}, status={getattr(client, 'status', '?')!r})"


def _future_client(source: Any) -> Any:
    """The client of a future inside ``source`` (a dask expression), or None; best effort."""
    walk = getattr(source, "walk", None)
    if walk is None:
        return None
    for expr in walk():
        for operand in getattr(expr, "operands", ()):
            layers = getattr(operand, "layers", None)
            mappings = (
                [getattr(layer, "mapping", {}) for layer in layers.values()] if layers else []
            )
            if isinstance(operand, dict):
                mappings.append(operand)
            for mapping in mappings:
                for value in list(mapping.values())[:100]:
                    if hasattr(value, "client") and hasattr(value, "key"):
                        return value.client
    return None


def fill_persisted(graph: dict, keys: Any, keep_on: Any = None, source: Any = None) -> dict:
    """``graph`` with the data of keys it needs (or ``keys`` asks for) but lacks, gathered from the
    client holding them.

    Keys held by ``keep_on`` (the client that will run the graph) stay references. Raises
    PersistedDataError naming the keys (and the client, found in ``source``, the collection's
    expression) when no live client of this process holds them.
    """
    missing = _missing(graph, keys)
    if not missing:
        return graph
    by_client: dict[Any, list] = {}
    unknown = set(missing)
    for client in _clients(keep_on):
        held = [k for k in unknown if client.refcount.get(k)]
        if held:
            unknown.difference_update(held)
            if client is not keep_on:
                by_client[client] = held
        if not unknown:
            break
    if unknown:
        sample = ", ".join(repr(k) for k in sorted(map(str, unknown))[:3])
        owner = _future_client(source)
        where = _describe(owner) if owner is not None else "a distributed Client"
        raise PersistedDataError(
            f"this dask graph needs {len(unknown)} result(s) persisted on {where}, which is "
            f"closed or no longer holds them (e.g. {sample}); persist the collection again "
            "(e.g. x = x.persist()) while that Client is open, or compute it from the start"
        )
    if not by_client:
        return graph
    from dask._task_spec import DataNode
    from distributed import Future

    graph = dict(graph)
    for client, keys in by_client.items():
        try:
            values = client.gather([Future(k, client) for k in keys])
        except Exception as exc:
            raise PersistedDataError(
                f"cannot fetch {len(keys)} result(s) persisted on {_describe(client)} for this "
                f"{'cell' if keep_on is None else 'cluster'}: {type(exc).__name__}: {exc}; "
                "compute it with that Client (%%executor dask, no options) or persist it again"
            ) from exc
        for key, value in zip(keys, values):
            graph[key] = DataNode(key, value)
    return graph
