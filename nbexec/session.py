"""The kernel-wide current executor, kept started across cells.

``use()`` starts an executor and only then stops the previous one, so a failed start leaves the
session exactly as it was. ``NBEXEC_EXECUTOR`` (the magic's syntax, e.g. ``threads -n 2``) replaces
every mode named by a magic, ``use()`` or ``run()``; Executor objects passed explicitly are kept.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config.modes import executor_for, validate
from .config.options import LineError, format_line, parse_line
from .core._dask_graph import unused_clients
from .core.render import FinishedRun
from .executors.base import Executor, ExecutorInfo

if TYPE_CHECKING:
    from .core.run import Run
    from .core.snapshot import Snapshot

__all__ = [
    "use",
    "current",
    "stop",
    "ensure",
    "override",
    "status",
    "SessionStatus",
    "ENV_VAR",
    "on_change",
    "last_run",
    "set_last_run",
    "on_last_run",
]

logger = logging.getLogger("nbexec.session")

ENV_VAR = "NBEXEC_EXECUTOR"


@dataclass
class _Active:
    executor: Executor
    mode: str | None
    options: dict[str, Any]
    stack: contextlib.ExitStack


@dataclass(frozen=True)
class SessionStatus:
    """What ``%executor status`` and the panel show."""

    mode: str | None
    options: dict[str, Any]
    override: str | None
    info: ExecutorInfo | None
    line: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        if self.info is None:
            lines = ["executor: none (cells run with 'local' until one is chosen)"]
        else:
            lines = [f"executor: {self.line or self.mode}"]
            info = self.info
            if info.workers is not None:
                lines.append(f"workers: {info.workers}")
            if info.threads is not None:
                lines.append(f"threads: {info.threads}")
            if info.memory:
                lines.append(f"memory: {info.memory / 2**30:.1f} GiB")
            if info.extra.get("client") == "user":
                lines.append("client: yours (the default Client; nbexec never closes it)")
            if info.address:
                lines.append(f"scheduler: {info.address}")
            if info.dashboard_link:
                lines.append(f"dashboard: {info.dashboard_link}")
            for address, counts in (info.extra.get("busy") or {}).items():
                lines.append(f"busy: {address} still runs {_stopped_tasks(counts)} (not killed)")
        lines.extend(self.extra.get("unused_clients", ()))
        if self.override:
            lines.append(
                f"override: {ENV_VAR}={self.override!r} replaces the modes named in the notebook"
            )
        return "\n".join(lines)


def _stopped_tasks(counts: Any) -> str:
    """``{"timed out": 1, ...}`` as "1 timed-out task"; a bare count as interrupted tasks."""
    if not isinstance(counts, dict):
        counts = {"interrupted": counts}
    parts = []
    for why, n in counts.items():
        label = "timed-out" if why == "timed out" else why
        parts.append(f"{n} {label} task{'s' if n != 1 else ''}")
    return " and ".join(parts)


_lock = threading.RLock()
_active: _Active | None = None
_listeners: list[weakref.ref] = []  # called after the session executor changed (held weakly)


def on_change(callback: Callable[[], None]) -> None:
    """Call ``callback()`` after every change of the session executor (started, switched,
    stopped), in the thread that made it. Held weakly (a bound method lives as long as its
    object); a listener that raises is ignored."""
    ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else weakref.ref(callback)
    _listeners.append(ref)


def _changed() -> None:
    for ref in list(_listeners):
        callback = ref()
        if callback is None:
            with contextlib.suppress(ValueError):
                _listeners.remove(ref)
            continue
        with contextlib.suppress(Exception):  # a view must never break a switch
            callback()


def override() -> tuple[str, dict[str, Any]] | None:
    """``(mode, options)`` from ``NBEXEC_EXECUTOR``, or None when it is unset or empty."""
    line = os.environ.get(ENV_VAR, "").strip()
    if not line:
        return None
    try:
        mode, options = parse_line(line)
    except LineError as exc:
        raise ValueError(f"{ENV_VAR}={line!r} is not a valid executor line: {exc}") from None
    if mode is None:
        raise ValueError(
            f"{ENV_VAR}={line!r} names no mode; valid modes: local, sync, threads, processes, dask"
        )
    validate(mode, options)
    return mode, options


def _effective(mode: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    forced = override()
    if forced is not None:
        return forced
    validate(mode, options)
    return mode, dict(options)


def _matches(active: _Active, mode: str | None, options: dict[str, Any]) -> bool:
    if active.mode != mode:
        return False
    return all(active.options.get(name) == value for name, value in options.items())


def _refuse_inside_run(what: str) -> None:
    """RuntimeError if a run on the session executor is still open: in this thread, or elsewhere
    (a background cell's run, another thread's); switching would stop its tasks."""
    from .core import history
    from .core.run import current_run

    if _active is None:
        return
    run = current_run()
    if run is not None and run.executor is _active.executor:
        raise RuntimeError(
            f"cannot {what} the session executor inside an open run (a `with nbexec.run():` "
            "block or an %%executor cell): its tasks use it; do it after the run ends"
        )
    going = [r for r in history.open_runs() if r.executor is _active.executor]
    if going:
        raise RuntimeError(
            f"cannot {what} the session executor while {len(going)} run(s) on it are still going "
            "(a background cell, or another thread's run): its tasks use it; wait for them "
            "first (`%executor wait`, or `run.wait()`), or cancel them (`run.cancel()`)"
        )


def _install(executor: Executor, mode: str | None, options: dict[str, Any]) -> Executor:
    global _active
    _refuse_inside_run("change")
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(executor.start())
        # A Dask session executor is dask's default scheduler for plain cells, as Client() is.
        stack.enter_context(executor.as_dask_default())
    except BaseException:
        stack.close()
        raise
    previous, _active = _active, _Active(executor, mode, options, stack)
    try:
        if previous is not None:
            previous.stack.close()
    finally:
        _changed()
    return executor


def _user_client() -> Any:
    """The ``distributed.Client`` the user made and made the default, if one is open."""
    if "distributed" not in sys.modules:
        return None
    from distributed.client import _get_global_client

    client = _get_global_client()
    if client is None or getattr(client, "status", None) not in ("running", "newly-created"):
        return None
    active = _active
    if active is not None and active.executor.dask_client is client:
        # nbexec's own session client is the default too; the user's is only the one it wraps
        return client if active.executor.user_client else None
    return client


def _on_user_client(mode: str, options: dict[str, Any]) -> Executor | None:
    """``dask`` without cluster options while the user has a default Client: run on it."""
    if mode != "dask" or options:
        return None
    client = _user_client()
    if client is None:
        return None
    active = _active
    if active is not None and active.executor.dask_client is client:
        return active.executor
    from .executors.dask import DaskExecutor

    return _install(DaskExecutor(client=client), "dask", {})


def use(executor_or_mode: Executor | str = "local", **options: Any) -> Executor:
    """Start ``executor_or_mode`` as the session executor and stop the previous one.

    A mode string is subject to ``NBEXEC_EXECUTOR``; an Executor object is used as given. If the
    new executor fails to start, the previous one stays current and untouched.
    """
    with _lock:
        if isinstance(executor_or_mode, Executor):
            if options:
                raise ValueError("options go with a mode name, not with an Executor object")
            return _install(executor_or_mode, getattr(executor_or_mode, "mode", None), {})
        if not isinstance(executor_or_mode, str):
            raise TypeError(
                f"use() takes a mode name or an Executor, got {type(executor_or_mode).__name__}"
            )
        mode, options = _effective(executor_or_mode, options)
        return _on_user_client(mode, options) or _install(
            executor_for(mode, **options), mode, options
        )


def ensure(mode: str | None = None, **options: Any) -> Executor:
    """The session executor for ``mode``/``options``, reusing the current one when it matches.

    An option left out means "any". Without a mode: the current executor, or ``local`` if none.
    """
    with _lock:
        forced = override()
        if forced is not None:
            mode, options = forced
        elif mode is None:
            if options:
                validate(_active.mode if _active and _active.mode else "local", options)
                if _active is not None and _matches(_active, _active.mode, options):
                    return _active.executor
                mode = _active.mode if _active and _active.mode else "local"
            else:
                if _active is not None:
                    return _active.executor
                mode = "local"
        else:
            validate(mode, options)
        on_user_client = _on_user_client(mode, options)
        if on_user_client is not None:
            return on_user_client
        if _active is not None and _matches(_active, mode, options):
            return _active.executor
        return _install(executor_for(mode, **options), mode, dict(options))


def current() -> Executor | None:
    """The session executor, or None before any was chosen."""
    active = _active
    return active.executor if active is not None else None


def current_mode() -> tuple[str | None, dict[str, Any]]:
    """The session executor's mode and options (``(None, {})`` before any)."""
    active = _active
    return (active.mode, dict(active.options)) if active is not None else (None, {})


def stop() -> None:
    """Stop the session executor (no-op if there is none)."""
    with _lock:
        _refuse_inside_run("stop")
        _close()


def _close() -> None:
    """Stop the session executor whatever still runs on it (the interpreter is exiting)."""
    global _active
    with _lock:
        previous, _active = _active, None
        if previous is not None:
            try:
                previous.stack.close()
            finally:
                _changed()


def status() -> SessionStatus:
    """Mode, options, what the executor runs on, and the environment override if any."""
    active = _active
    forced = os.environ.get(ENV_VAR, "").strip() or None
    session_client = active.executor.dask_client if active is not None else None
    extra = {"unused_clients": unused_clients(session_client)}
    if active is None:
        return SessionStatus(None, {}, forced, None, extra=extra)
    try:
        info = active.executor.describe()
    except Exception as exc:  # a cluster that went away must not break the status line
        info = ExecutorInfo(mode=active.mode or "custom", extra={"error": str(exc)})
    line = format_line(active.mode, active.options) if active.mode else None
    return SessionStatus(active.mode, dict(active.options), forced, info, line, extra)


atexit.register(_close)


# --- the last run shown under a cell (``%%executor``, a background cell): what the magics'
# ``last_run()``, the executor panel and the dashboard read.
_last_ref: weakref.ref[Run] | None = None
_last_snapshot: Snapshot | None = None
_last_listeners: list[weakref.ref] = []


def last_run() -> Run | FinishedRun | None:
    """The run most recently shown under a cell while it is alive, else a ``FinishedRun`` with
    its last snapshot (None before any)."""
    ref, snapshot = _last_ref, _last_snapshot
    run = ref() if ref is not None else None
    if run is not None:
        return run
    return FinishedRun(snapshot) if snapshot is not None else None


def set_last_run(run: Run | None, snapshot: Snapshot | None = None) -> None:
    """Record ``run`` as the last run shown (weakly: ``snapshot`` is what stays once the run is
    freed) and call the ``on_last_run`` listeners with it."""
    global _last_ref, _last_snapshot
    _last_ref = weakref.ref(run) if run is not None else None
    _last_snapshot = snapshot
    for ref in list(_last_listeners):
        callback = ref()
        if callback is None:
            with contextlib.suppress(ValueError):
                _last_listeners.remove(ref)
            continue
        try:
            callback(run)
        except Exception:  # noqa: BLE001 - a broken listener must not break a cell
            logger.debug("last-run listener failed", exc_info=True)


def on_last_run(callback: Callable[[Run | None], None]) -> None:
    """Call ``callback(run)`` whenever the last run shown changes. Held weakly (a bound method
    lives as long as its object)."""
    ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else weakref.ref(callback)
    _last_listeners.append(ref)
