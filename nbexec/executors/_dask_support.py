"""DaskExecutor's helpers: quiet logs, cluster classes by name, resource tags, shipping task code."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import dask
import distributed

from ..runtime._taskcall import _nbexec_remote as rt
from . import _dask_remote as remote
from ._cluster_class import import_cluster_class, is_local_cluster  # noqa: F401 - re-exported
from ._tags import parse_resources  # noqa: F401 - re-exported for the Dask executor

_DEFAULT_LOGGING = {"distributed": "info", "distributed.client": "warning", "bokeh": "error"}


#: Loggers whose errors nbexec reports itself (a result that cannot be deserialized fails its
#: task; a lost scheduler shows in the status): their lines would only reach some later cell's
#: stderr, e.g. "Failed to reconnect to scheduler ... closing client" 10 s after a scheduler left.
_REPORTED_ELSEWHERE = (
    "distributed.protocol", "distributed.client", "distributed.batched", "distributed.comm",
)  # fmt: skip


class _ErrorsOnly(logging.Filter):
    """Lets only errors through: distributed's info lines and warnings are not a notebook's business."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(_REPORTED_ELSEWHERE):
            return False
        return record.levelno >= logging.ERROR


_ERRORS_ONLY = _ErrorsOnly()


def _quiet_stderr_logs() -> None:
    """Keep distributed's and bokeh's info and warnings off stderr, unless the user configured logging.

    A filter on their stream handlers, installed once: distributed's own ``silence_logs`` saves and
    restores handler levels, which goes wrong when clusters start and stop out of order (a stopped
    cluster restored INFO while another one still ran, and its messages reached the cell's stderr).
    """
    configured = dask.config.get("logging", {}) or {}
    if "version" in configured or any(
        configured.get(k, v) != v for k, v in _DEFAULT_LOGGING.items()
    ):
        return
    for name in ("distributed", "bokeh"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and _ERRORS_ONLY not in handler.filters:
                handler.addFilter(_ERRORS_ONLY)


def _check_mapping(name: str, value: Any) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict or None, not {type(value).__name__}")
    return dict(value)


_REMOTE_SOURCES: tuple[dict[str, tuple[str, bytes]], str] | None = None


def _remote_sources() -> tuple[dict[str, tuple[str, bytes]], str]:
    """The ``_nbexec_remote`` package's ``{module name: (file name, source)}`` and their digest
    (read once per process)."""
    global _REMOTE_SOURCES
    if _REMOTE_SOURCES is None:
        sources = remote.package_sources(rt.__spec__)
        if sources is None:
            raise RuntimeError(f"cannot read the sources of {rt.__name__} in {rt.__path__}")
        digest = remote.digest_of(sources)
        # An in-process scheduler or worker finds it present.
        setattr(rt, remote.DIGEST_ATTR, digest)
        _REMOTE_SOURCES = (sources, digest)
    return _REMOTE_SOURCES


def _install_remote_module(client: distributed.Client) -> None:
    """Install ``_nbexec_remote`` on the scheduler and every worker, present and future, once.

    Idempotent plugins named by the sources' digest: a later ``start()`` with the same code costs
    two scheduler round trips and no worker work.
    """
    sources, digest = _remote_sources()
    name = f"nbexec-remote-{digest[:16]}"
    args = (remote.PACKAGE, sources, digest)
    try:
        client.register_plugin(remote.InstallScheduler(*args), name=name)
        client.register_plugin(remote.InstallWorker(*args), name=name)
    except Exception as exc:
        raise RuntimeError(
            f"could not install nbexec's task code ({remote.PACKAGE}) on the Dask cluster: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _raise_if_unpicklable(exc: BaseException, what: str) -> None:
    """Re-raise a serialization failure of ``client.submit``/``map`` as a TypeError naming ``what``."""
    if isinstance(exc, pickle.PicklingError) or "serialize" in str(exc.args[0] if exc.args else ""):
        cause = exc.__cause__ or exc
        raise TypeError(
            f"cannot pickle the function or arguments of {what}: {type(cause).__name__}: {cause}"
        ) from exc


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
