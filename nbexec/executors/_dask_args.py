"""DaskExecutor's arguments: checked and completed before anything starts."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import distributed
from distributed.deploy import LocalCluster

from ._dask_support import _check_mapping, import_cluster_class, is_local_cluster


def check_arguments(
    address: str | None,
    cluster_class: str | Callable | None,
    cluster_kwargs: dict | None,
    adapt_kwargs: dict | None,
    client_kwargs: dict | None,
    debug: bool | None,
    scale: int | None,
    client: distributed.Client | None,
    performance_report_path: Any = None,
) -> tuple[Callable | None, dict | None, dict | None, dict]:
    """Refuse arguments that would have no effect; return the cluster class and the cluster,
    adapt and client kwargs to use (LocalCluster's defaults bind 127.0.0.1, logs quiet)."""
    cls: Callable | None = None  # None with `address` or `client`: no cluster to create
    if client is not None:
        _check_user_client(client, address, cluster_class, cluster_kwargs, adapt_kwargs, scale)
        cluster_class = cluster_kwargs = adapt_kwargs = None
    if address is not None and not isinstance(address, str):
        raise TypeError(f"address must be a str or None, not {type(address).__name__}")
    cluster_kwargs = _check_mapping("cluster_kwargs", cluster_kwargs)
    adapt_kwargs = _check_mapping("adapt_kwargs", adapt_kwargs)
    client_kwargs = _check_mapping("client_kwargs", client_kwargs) or {}
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int) or scale < 0):
        raise ValueError(f"scale must be a non-negative int or None, not {scale!r}")
    if performance_report_path is not None and not isinstance(
        performance_report_path, (str, os.PathLike)
    ):
        raise TypeError("performance_report_path must be a path (str or os.PathLike) or None")
    if address is not None:
        if cluster_class is not None or cluster_kwargs is not None:
            raise ValueError("Cannot specify `address` and `cluster_class`/`cluster_kwargs`")
        if adapt_kwargs is not None:
            raise ValueError(
                "Cannot specify `address` and `adapt_kwargs`: nbexec does not manage an "
                "existing cluster, so adaptive scaling would have no effect"
            )
        if debug is not None:
            raise ValueError(
                "`debug` has no effect with `address`: it only sets the log "
                "level of a LocalCluster that nbexec creates"
            )
        if scale is not None:
            raise ValueError(
                "`scale` has no effect with `address`: nbexec does not manage an existing cluster"
            )
    elif client is not None:
        pass
    else:
        if cluster_class is None:
            cls = LocalCluster
        elif isinstance(cluster_class, str):
            cls = import_cluster_class(cluster_class)
        elif callable(cluster_class):
            cls = cluster_class
        else:
            raise TypeError(
                f"cluster_class must be a dotted name, a class or a callable, not {cluster_class!r}"
            )
        cluster_kwargs = cluster_kwargs or {}
        is_local = is_local_cluster(cls)
        if is_local:
            level = logging.CRITICAL if not debug else logging.WARNING
            cluster_kwargs.setdefault("silence_logs", level)
            if cluster_kwargs.get("processes", True):
                # An inproc (processes=False) LocalCluster fails with host="127.0.0.1".
                cluster_kwargs.setdefault("host", "127.0.0.1")
            else:  # its workers' HTTP servers (/health, /metrics) would bind 0.0.0.0
                cluster_kwargs.setdefault("worker_dashboard_address", "127.0.0.1:0")
            cluster_kwargs.setdefault("dashboard_address", "127.0.0.1:0")
        elif debug is not None:
            raise ValueError(
                f"`debug` has no effect with cluster_class {cluster_class!r}: it only sets "
                "the log level of a LocalCluster; pass that cluster's own logging options "
                "in cluster_kwargs instead"
            )
        adapt_kwargs = adapt_kwargs or {}
    client_kwargs.setdefault("set_as_default", False)
    return cls, cluster_kwargs, adapt_kwargs, client_kwargs


def _check_user_client(
    client: Any,
    address: Any,
    cluster_class: Any,
    cluster_kwargs: Any,
    adapt_kwargs: Any,
    scale: Any,
) -> None:
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}")
    given = [name for name, value in (("address", address), ("cluster_class", cluster_class),
             ("cluster_kwargs", cluster_kwargs), ("adapt_kwargs", adapt_kwargs),
             ("scale", scale)) if value is not None]  # fmt: skip
    if given:
        raise ValueError(
            f"`client` runs on the cluster of a Client you made; {', '.join(given)} would "
            "configure another cluster"
        )


def scheduler_address(client: Any) -> str | None:
    try:
        return client.scheduler.address
    except Exception:  # noqa: BLE001 - a closed client
        return None


def usable_client(client: distributed.Client) -> distributed.Client:
    if client.status not in ("running", "newly-created"):
        raise RuntimeError(
            f"the Client you made (scheduler {scheduler_address(client)!r}) is {client.status}; "
            "create it again, or run `%executor dask` with options to let nbexec start a cluster"
        )
    return client
