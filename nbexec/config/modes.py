"""Mode names and options -> an Executor (``executor_for``).

Modes: ``local`` (LocalExecutor), ``sync``/``threads``/``processes`` (LocalDaskExecutor with that
scheduler) and ``dask`` (DaskExecutor). An option that does not fit the mode is a ValueError naming
it and listing what the mode accepts; nothing is silently ignored.
"""

from __future__ import annotations

from typing import Any

from ..executors._cluster_class import LOCAL_CLUSTER, import_cluster_class, is_local_cluster
from ..executors._limits import (
    check_address,
    check_client_kwargs,
    check_count,
    check_local_cluster_kwargs,
    check_seconds,
    max_processes,
    max_threads,
)
from ..executors.base import Executor
from .options import (
    CLUSTER_SHAPING,
    LOCAL_CLUSTER_KWARGS,
    LOCAL_CLUSTER_ONLY,
    MODE_OPTIONS,
    MODES,
    OPTIONS,
)

__all__ = ["MODES", "MODE_OPTIONS", "executor_for", "validate", "resolve_cluster_class"]

_ALL_OPTIONS = tuple(dict.fromkeys(o.dest for o in OPTIONS))


def _accepted(mode: str) -> str:
    names = MODE_OPTIONS[mode]
    return ", ".join(names) if names else "no options"


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def resolve_cluster_class(name: str) -> type:
    """Import ``name`` (a dotted name) and check it is a ``distributed.deploy.Cluster`` subclass."""
    return import_cluster_class(name)


def validate(mode: str, options: dict[str, Any]) -> None:
    """Raise ValueError if ``mode`` is unknown or an option does not fit it or has a bad value."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes: {', '.join(MODES)}")
    for name in options:
        if name not in MODE_OPTIONS[mode]:
            if name in _ALL_OPTIONS:
                raise ValueError(
                    f"option {name!r} does not fit mode {mode!r}; {mode!r} accepts: {_accepted(mode)}"
                )
            raise ValueError(
                f"unknown option {name!r}; options: {', '.join(_ALL_OPTIONS)} (mode {mode!r} accepts: "
                f"{_accepted(mode)})"
            )
    _check_sizes(mode, options)
    if "processes" in options and not isinstance(options["processes"], bool):
        raise ValueError(f"processes must be True or False, got {options['processes']!r}")
    if "timeout" in options:
        check_seconds("timeout", options["timeout"])
    if "adapt" in options:
        adapt = options["adapt"]
        if not isinstance(adapt, (tuple, list)) or len(adapt) != 2:
            raise ValueError(f"adapt must be (minimum, maximum), got {adapt!r}")
        lo, hi = adapt
        _check_int("adapt minimum", lo, 0)
        _check_int("adapt maximum", hi, 1)
        if _local_cluster_options(options):
            check_count("adapt maximum", hi, 1, max_processes(), "LocalCluster workers")
        if lo > hi:
            raise ValueError(f"adapt minimum {lo} is larger than maximum {hi}")
    for name in ("cluster_kwargs", "client_kwargs"):
        if name in options and not isinstance(options[name], dict):
            raise ValueError(f"{name} must be a dict, got {type(options[name]).__name__}")
    if "client_kwargs" in options:
        check_client_kwargs(options["client_kwargs"])
    if "memory_limit" in options:
        _check_memory(options["memory_limit"])
    if "address" in options:
        check_address(options["address"])
        clash = [n for n in CLUSTER_SHAPING if n in options]
        if clash:
            raise ValueError(
                f"option(s) {', '.join(clash)} configure a cluster nbexec creates and do not fit "
                "--address (an existing cluster)"
            )
    cluster_class = options.get("cluster_class")
    if isinstance(cluster_class, str):
        resolved = resolve_cluster_class(cluster_class)
        _check_cluster_class_options(resolved, options)
    elif cluster_class is not None:
        if not callable(cluster_class):
            raise ValueError(
                f"cluster_class must be a dotted name or a callable, got {cluster_class!r}"
            )
        _check_cluster_class_options(cluster_class, options)
    tls = [n for n in ("tls_ca_file", "tls_cert", "tls_key") if n in options]
    if tls:
        if set(tls) != {"tls_ca_file", "tls_cert", "tls_key"}:
            missing = sorted({"tls_ca_file", "tls_cert", "tls_key"} - set(tls))
            raise ValueError(
                f"TLS needs tls_ca_file, tls_cert and tls_key together; missing: {', '.join(missing)}"
            )
        import os

        for n in tls:
            if not os.path.isfile(str(options[n])):
                raise ValueError(f"{n}: no such file {options[n]!r}")


def _local_cluster_options(options: dict[str, Any]) -> bool:
    """Whether ``options`` make a LocalCluster (no address, no other cluster class)."""
    # a name that does not resolve is not one (refused with its own message below)
    return "address" not in options and is_local_cluster(options.get("cluster_class", ""))


def _check_sizes(mode: str, options: dict[str, Any]) -> None:
    """Counts of workers and threads: whole numbers, and none far beyond this machine."""
    local = mode == "dask" and _local_cluster_options(options)
    if "workers" in options:
        if mode == "threads":
            check_count("workers", options["workers"], 1, max_threads(), "threads")
        elif mode == "processes":
            check_count("workers", options["workers"], 1, max_processes(), "processes")
        else:
            limit = max_processes() if local else None
            check_count("workers", options["workers"], 0, limit, "LocalCluster workers")
    if "threads_per_worker" in options:
        check_count(
            "threads_per_worker", options["threads_per_worker"], 1, max_threads(), "threads"
        )
    if local:
        kwargs = options.get("cluster_kwargs")
        merged = dict(kwargs) if isinstance(kwargs, dict) else {}
        for name, kwarg in LOCAL_CLUSTER_KWARGS.items():
            if name in options:
                merged[kwarg] = options[name]
        check_local_cluster_kwargs(merged)


def _check_memory(value: Any) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return
    if isinstance(value, str):
        if value == "auto":
            return
        from dask.utils import parse_bytes

        try:
            if parse_bytes(value) > 0:
                return
        except (ValueError, TypeError):
            pass
    raise ValueError(
        f"memory_limit must be a size such as '2GiB', a number of bytes or 'auto', got {value!r}"
    )


def _check_cluster_class_options(cls: Any, options: dict[str, Any]) -> None:
    if is_local_cluster(cls):
        return
    clash = [n for n in LOCAL_CLUSTER_ONLY if n in options]
    if clash:
        raise ValueError(
            f"option(s) {', '.join(clash)} configure a LocalCluster; for "
            f"{getattr(cls, '__name__', cls)!r} pass them in cluster_kwargs"
        )


def executor_for(mode: str, **options: Any) -> Executor:
    """A new, not yet started Executor for ``mode`` configured by ``options``."""
    validate(mode, options)
    if mode == "local":
        from ..executors.local import LocalExecutor

        return LocalExecutor()
    if mode in ("sync", "threads", "processes"):
        from ..executors.local_dask import LocalDaskExecutor

        config = {"num_workers": options["workers"]} if "workers" in options else {}
        return LocalDaskExecutor(scheduler=mode, **config)
    return _dask_executor(options)


def _dask_executor(options: dict[str, Any]) -> Executor:
    from ..executors.dask import DaskExecutor

    client_kwargs = dict(options.get("client_kwargs") or {})
    if "timeout" in options:
        client_kwargs["timeout"] = options["timeout"]
    if "tls_ca_file" in options:
        from distributed.security import Security

        client_kwargs["security"] = Security(
            tls_ca_file=options["tls_ca_file"],
            tls_client_cert=options["tls_cert"],
            tls_client_key=options["tls_key"],
            require_encryption=True,
        )
    adapt_kwargs = None
    if "adapt" in options:
        lo, hi = options["adapt"]
        adapt_kwargs = {"minimum": lo, "maximum": hi}
    if "address" in options:
        return DaskExecutor(address=options["address"], client_kwargs=client_kwargs)
    cluster_class = options.get("cluster_class", LOCAL_CLUSTER)
    if isinstance(cluster_class, str):
        cluster_class = resolve_cluster_class(cluster_class)
    cluster_kwargs = dict(options.get("cluster_kwargs") or {})
    scale = None
    if is_local_cluster(cluster_class):
        for name, kwarg in LOCAL_CLUSTER_KWARGS.items():
            if name in options:
                cluster_kwargs[kwarg] = options[name]
        if adapt_kwargs and "n_workers" not in cluster_kwargs:
            cluster_kwargs["n_workers"] = adapt_kwargs["minimum"]
    elif "workers" in options:
        scale = options["workers"]
    return DaskExecutor(
        cluster_class=cluster_class,
        cluster_kwargs=cluster_kwargs,
        adapt_kwargs=adapt_kwargs,
        client_kwargs=client_kwargs,
        scale=scale,
    )
