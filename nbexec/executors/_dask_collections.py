"""DaskExecutor's support for dask collections: the scheduler ``get``, task states, the default
client, and the graphs the cell's own code gives the client (``client.submit``, ``map``, ...)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import dask
import distributed

from ..pools._stdwait import std_future_status

#: ``OWN.on`` is True while nbexec itself submits to a client in this thread (not counted again).
OWN = threading.local()
_logger = logging.getLogger(__name__)


class DaskCollections:
    """``dask_get``, ``dask_task_states`` and ``as_dask_default`` for ``DaskExecutor`` (a mixin)."""

    logger: logging.Logger
    client: distributed.Client | None = None

    def _require_client(self) -> distributed.Client:
        raise NotImplementedError

    #: ``dask_get(..., sync=False)`` returns futures whose data stays on the workers.
    dask_keeps_results = True

    @property
    def dask_client(self) -> distributed.Client | None:
        """The client this executor runs on while started (else None)."""
        return self.client

    def future_status(self, future: Any) -> str:
        """A distributed future's own status ("lost" counts as "error"); others as any future's."""
        if isinstance(future, distributed.Future):
            status = future.status
            return "error" if status in (None, "lost") else status
        return std_future_status(future)

    def call_stack(self, key: str, timeout: float) -> tuple[str | None, list[str]]:
        """``(worker, frames)`` of the thread running ``key``, from the scheduler's
        ``call_stack``; ``(None, [])`` if the scheduler does not answer within ``timeout``."""
        client = self.dask_client
        scheduler = None if client is None else client.scheduler
        if client is None or scheduler is None:
            return None, []
        try:
            stacks = client.sync(scheduler.call_stack, keys=[key], callback_timeout=timeout)
        except Exception:  # noqa: BLE001 - the scheduler is slow or gone
            return None, []
        for worker, by_key in (stacks or {}).items():
            for frames in (by_key or {}).values():
                return str(worker), list(frames)
        return None, []

    def dask_get(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        """A dask scheduler ``get`` on this executor's client (``sync=False``: futures)."""
        client = self._require_client()
        OWN.on = True
        try:
            return client.get(dsk, keys, **kwargs)
        finally:
            OWN.on = False

    def count_client_calls(self, listener: Callable[..., None]) -> Callable[[], None] | None:
        """Until the returned function is called, ``listener(self, expr, keys, futures)`` gets each
        graph this executor's client is given by other code than nbexec's: the cell's
        ``client.submit``, ``map``, ``compute``, ``persist``, ``get``. Calls from this thread go
        to this listener; calls from other threads to the listener registered last. Not started:
        dask's default Client's (``count_default_client_calls``)."""
        if self.client is None:
            return count_default_client_calls(listener)
        return _ClientCalls.on(self.client).listen(self, listener)

    def dask_task_states(self, keys: list) -> dict:
        """The scheduler's state of each of ``keys`` it still knows ("erred" only where the error
        arose; its dependents are "erred-upstream")."""

        def states(dask_scheduler: Any, keys: list) -> dict:
            out = {}
            for key in keys:
                ts = dask_scheduler.tasks.get(key)
                if ts is None:
                    continue
                state = ts.state
                if state == "erred" and ts.exception_blame is not ts:
                    state = "erred-upstream"
                out[key] = state
            return out

        try:
            return self._require_client().run_on_scheduler(states, keys=keys)
        except Exception as exc:  # noqa: BLE001 - the table then shows them as not run
            self.logger.debug("Could not read task states: %r", exc)
            return {}

    @contextmanager
    def as_dask_default(self) -> Iterator[None]:
        """Make this executor's client dask's default, as ``Client()`` does, until the block ends.

        A client the user made is the default already and stays so. The blocks of two executors
        overlap when the session switches (the new one starts before the old one stops): dask's
        ``scheduler`` config goes back to what it was before the first once the last one ends, and
        no default client is left (a ``dask.config.set`` block each would leave "dask.distributed"
        set with no client).
        """
        from distributed.client import _del_global_client, _get_global_client, _set_global_client

        client = self._require_client()
        if _get_global_client() is client:
            yield
            return
        _set_global_client(client)
        with _DEFAULT_LOCK:
            if not _DEFAULTS:
                _PRIOR[0] = dask.config.get("scheduler", None)
            _DEFAULTS.append(client)
            dask.config.set(scheduler="dask.distributed")
        try:
            yield
        finally:
            _del_global_client(client)
            with _DEFAULT_LOCK:
                _DEFAULTS.remove(client)
                if (
                    not _DEFAULTS
                    and _get_global_client() is None
                    and dask.config.get("scheduler", None) == "dask.distributed"
                ):
                    dask.config.set(scheduler=_PRIOR[0])


# The clients as_dask_default made dask's default (in order), and the scheduler config before them.
_DEFAULTS: list = []
_PRIOR: list = [None]
_DEFAULT_LOCK = threading.Lock()


class _ClientCalls:
    """The listeners of one client's graphs: in front of its ``_graph_to_futures``, the method
    every submission goes through (an instance attribute, removed with the last listener)."""

    _by_client: dict[int, _ClientCalls] = {}
    _lock = threading.Lock()

    def __init__(self, client: distributed.Client):
        self.client = client
        self.listeners: list[tuple[int, Any, Callable]] = []

    @classmethod
    def on(cls, client: distributed.Client) -> _ClientCalls:
        with cls._lock:
            calls = cls._by_client.get(id(client))
            if calls is None or calls.client is not client:
                calls = cls._by_client[id(client)] = cls(client)
            return calls

    def listen(self, owner: Any, listener: Callable) -> Callable[[], None]:
        entry = (threading.get_ident(), owner, listener)
        with self._lock:
            if not self.listeners:
                self.client._graph_to_futures = self._graph_to_futures  # type: ignore[method-assign]
            self.listeners.append(entry)

        def stop() -> None:
            with self._lock:
                if entry not in self.listeners:
                    return
                self.listeners.remove(entry)
                if not self.listeners:
                    if self.client.__dict__.get("_graph_to_futures") == self._graph_to_futures:
                        del self.client._graph_to_futures
                    self._by_client.pop(id(self.client), None)

        return stop

    def _graph_to_futures(self, expr: Any, keys: Any, *args: Any, **kwargs: Any) -> dict:
        futures = type(self.client)._graph_to_futures(self.client, expr, keys, *args, **kwargs)
        if getattr(OWN, "on", False):
            return futures
        listeners = self.listeners
        here = threading.get_ident()
        entry = next((e for e in reversed(listeners) if e[0] == here), None)
        if entry is None and listeners:
            entry = listeners[-1]
        if entry is not None:
            try:
                entry[2](entry[1], expr, list(keys), futures)
            except Exception as exc:  # noqa: BLE001 - counting never breaks the user's call
                _logger.debug("Could not count a client's graph: %r", exc)
        return futures


class _DefaultClient(DaskCollections):
    """``dask_task_states`` (and ``client``) for dask's default client, the user's."""

    logger = _logger

    def __init__(self, client: distributed.Client):
        self.client = client

    def _require_client(self) -> distributed.Client:
        assert self.client is not None
        return self.client


def count_default_client_calls(listener: Callable[..., None]) -> Callable[[], None] | None:
    """``DaskExecutor.count_client_calls`` on dask's default Client (the user's ``Client()``),
    for runs on other executors; None when there is no such client. ``listener`` gets an object
    with the client's ``client`` and ``dask_task_states`` first."""
    from distributed.client import _get_global_client

    client = _get_global_client()
    if client is None or client.asynchronous or client.status != "running":
        return None
    return _ClientCalls.on(client).listen(_DefaultClient(client), listener)
