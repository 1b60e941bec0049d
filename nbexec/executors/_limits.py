"""Bounds on what an executor may start on this machine, and checks of timeouts and addresses.

The rule: work that runs on this machine gets at most ``max_processes()`` processes (pool children
or LocalCluster worker processes: ``max(32, 4 * cores)``) and ``max_threads()`` threads
(``max(256, 32 * cores)``): beyond that the children's memory (about 20 MB each) or the threads'
switching costs more than the extra parallelism can give back. Counts for remote clusters
(``cluster_class`` other than LocalCluster, ``--address``) are not bounded here.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from typing import Any

__all__ = [
    "cores", "max_processes", "max_threads", "check_count", "check_seconds", "check_address",
    "check_local_cluster_kwargs", "check_client_kwargs",
]  # fmt: skip

#: Longest timeout accepted (one day): longer ones are a typo or ``inf``.
MAX_SECONDS = 86400.0
_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def max_processes() -> int:
    """Most worker processes started on this machine: ``max(32, 4 * cores)``."""
    return max(32, 4 * cores())


def max_threads() -> int:
    """Most worker threads started in one process: ``max(256, 32 * cores)``."""
    return max(256, 32 * cores())


def check_count(
    name: str, value: Any, minimum: int, limit: int | None = None, what: str = ""
) -> None:
    """ValueError unless ``value`` is a whole number in ``[minimum, limit]``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if limit is not None and value > limit:
        raise ValueError(
            f"{name}={value} is far beyond this machine ({cores()} cores): at most {limit} "
            f"{what or 'workers'} (the limit is {_rule(what)})"
        )


def _rule(what: str) -> str:
    if "thread" in what:
        return "max(256, 32 * cores)"
    return "max(32, 4 * cores)"


def check_seconds(name: str, value: Any) -> None:
    """ValueError unless ``value`` is a finite number of seconds in ``(0, MAX_SECONDS]``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise ValueError(
            f"{name} must be a number of seconds > 0 and <= {MAX_SECONDS:g}, got {value!r}"
        )


_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")


def check_address(address: Any) -> None:
    """ValueError unless ``address`` could be a scheduler address (``[scheme://]host[:port]``)."""
    if not isinstance(address, str) or not address:
        raise ValueError(
            f"address must be a scheduler address such as tcp://host:8786, got {address!r}"
        )
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in _SCHEMES:
        raise ValueError(
            f"address {address!r}: unknown scheme {scheme!r}; expected one of {', '.join(_SCHEMES)}"
        )
    if scheme == "inproc":
        return
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [IPv6]:port
        host, _, port = rest[1:].partition("]")
        port = port[1:] if port.startswith(":") else port
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"address {address!r}: {host!r} is not an IPv6 address") from None
    else:
        host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"address {address!r}: {host!r} is not an IPv4 address") from None
        elif not _HOST.match(host):
            raise ValueError(f"address {address!r}: {host!r} is not a host name")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"address {address!r}: port {port!r} is not a number from 1 to 65535")


def check_local_cluster_kwargs(kwargs: dict, *, label: str = "cluster_kwargs") -> None:
    """ValueError naming the key if LocalCluster keyword arguments have a wrong type or size."""
    n = kwargs.get("n_workers")
    if n is not None:
        check_count(f"{label}['n_workers']", n, 0, max_processes(), "LocalCluster workers")
    tpw = kwargs.get("threads_per_worker")
    if tpw is not None:
        check_count(f"{label}['threads_per_worker']", tpw, 1, max_threads(), "threads")
    if n and tpw and n * tpw > max_threads():
        raise ValueError(
            f"{label}: {n} workers x {tpw} threads is far beyond this machine ({cores()} cores): "
            f"at most {max_threads()} threads in all (max(256, 32 * cores))"
        )
    if "processes" in kwargs and not isinstance(kwargs["processes"], bool):
        raise ValueError(f"{label}['processes'] must be True or False, got {kwargs['processes']!r}")
    for key in ("dashboard_address", "host", "scheduler_port"):
        value = kwargs.get(key)
        if key == "scheduler_port" and value is not None:
            check_count(f"{label}['scheduler_port']", value, 0, 65535, "port")
        elif key != "scheduler_port" and value is not None and not isinstance(value, str):
            raise ValueError(f"{label}['{key}'] must be a string, got {value!r}")


def check_client_kwargs(kwargs: dict, *, label: str = "client_kwargs") -> None:
    """ValueError naming the key if ``distributed.Client`` keyword arguments have a wrong type."""
    for key in ("timeout", "heartbeat_interval"):
        if key in kwargs and kwargs[key] is not None:
            value = kwargs[key]
            if isinstance(value, str):  # distributed accepts "10s"
                from dask.utils import parse_timedelta

                try:
                    value = parse_timedelta(value)
                except (ValueError, KeyError, TypeError):
                    raise ValueError(
                        f"{label}['{key}'] must be seconds or a duration such as '10s', "
                        f"got {kwargs[key]!r}"
                    ) from None
            check_seconds(f"{label}['{key}']", value)
    for key in ("set_as_default", "direct_to_workers", "asynchronous"):
        if key in kwargs and not isinstance(kwargs[key], bool):
            raise ValueError(f"{label}['{key}'] must be True or False, got {kwargs[key]!r}")
    if kwargs.get("asynchronous"):
        raise ValueError(f"{label}['asynchronous']=True is not supported (nbexec waits for you)")
    if "address" in kwargs:
        check_address(kwargs["address"])
