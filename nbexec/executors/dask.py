"""DaskExecutor: Prefect 1's DaskExecutor on dask.distributed, with nbexec's fixes.

Differences from the seed (see DESIGN.md): arguments that would have no effect are refused; a
cluster class named by string must be a ``distributed.deploy.Cluster``; the scheduler is reached
within a bounded time; cancellation on exit costs no scheduler round trip per task (a worker-local
flag set once per worker); the performance report is really written; worker events come from
distributed's event topics; user kwargs named key/pure/resources reach the function; nbexec's task
code (``_nbexec_remote``) reaches the scheduler and each worker once, not with every task.
"""

from __future__ import annotations

import logging
import os
import pickle
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import cloudpickle
import dask
import distributed
from dask.utils import funcname
from distributed.deploy import LocalCluster

from ..runtime._taskcall import _nbexec_remote as rt  # what runs in tasks: pickled by reference
from . import _dask_remote as remote
from ._connect import probe_scheduler
from ._dask_done import DoneWatch
from ._dask_stuck import busy_report, free_stuck_workers
from ._dask_support import (
    _check_mapping,
    _install_remote_module,
    _qualname,
    _quiet_stderr_logs,
    _raise_if_unpicklable,
    import_cluster_class,
    is_local_cluster,
    parse_resources,
)
from .base import (
    EventCallback,
    EventChannel,
    Executor,
    ExecutorInfo,
    NotStartedError,
    make_task_key,
)

# The installer plugins travel by value; what they install (``_nbexec_remote``) is shipped once.
cloudpickle.register_pickle_by_value(remote)

__all__ = ["DaskExecutor", "parse_resources", "import_cluster_class"]

# Large graphs are the user's business; the warning would land in a cell's stderr. Appended, so a
# user's own filter for it wins.
warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning, append=True)

_NOT_STARTED = "This executor has not been started."


class DaskExecutor(Executor):
    """Runs functions on a ``dask.distributed`` cluster: a temporary one, or one at ``address``."""

    mode = "dask"

    def __init__(
        self,
        address: str | None = None,
        cluster_class: str | Callable | None = None,
        cluster_kwargs: dict | None = None,
        adapt_kwargs: dict | None = None,
        client_kwargs: dict | None = None,
        debug: bool | None = None,
        performance_report_path: str | None = None,
        watch_worker_status: bool | None = None,
        disable_cancellation_event: bool = False,
        *,
        scale: int | None = None,
        client: distributed.Client | None = None,
    ) -> None:
        super().__init__()
        if client is not None:
            _check_user_client(client, address, cluster_class, cluster_kwargs, adapt_kwargs, scale)
            cluster_class = cluster_kwargs = adapt_kwargs = None
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a str or None, not {type(address).__name__}")
        cluster_kwargs = _check_mapping("cluster_kwargs", cluster_kwargs)
        adapt_kwargs = _check_mapping("adapt_kwargs", adapt_kwargs)
        client_kwargs = _check_mapping("client_kwargs", client_kwargs) or {}
        if scale is not None and (
            isinstance(scale, bool) or not isinstance(scale, int) or scale < 0
        ):
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
                    "`scale` has no effect with `address`: nbexec does not "
                    "manage an existing cluster"
                )
        elif client is not None:
            pass
        else:
            if cluster_class is None:
                cluster_class = LocalCluster
            elif isinstance(cluster_class, str):
                cluster_class = import_cluster_class(cluster_class)
            elif not callable(cluster_class):
                raise TypeError(
                    f"cluster_class must be a dotted name, a class or a callable, not {cluster_class!r}"
                )
            cluster_kwargs = cluster_kwargs or {}
            is_local = is_local_cluster(cluster_class)
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
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = cluster_kwargs
        self.adapt_kwargs = adapt_kwargs
        self.client_kwargs = client_kwargs
        self.performance_report_path = performance_report_path
        self.watch_worker_status = watch_worker_status
        self.disable_cancellation_event = disable_cancellation_event
        self.scale = scale
        self._user_client = client
        self._reset_runtime()

    # --- state --------------------------------------------------------------------------------

    def _reset_runtime(self) -> None:
        self.client: distributed.Client | None = None
        self._cluster: Any = None
        self._busy_after_interrupt: dict[str, set[str]] = {}
        self._token: str | None = None
        self._futures: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._channels: list[EventChannel] = []
        self._watchers: list[Callable[[str, str | None, int], None]] = []
        self._workers: set[str] | None = None
        self._watching = False
        self._done: DoneWatch | None = None
        self._info: dict | None = None  # scheduler_info, kept while worker events say it holds
        self._info_version = 0
        self._link: tuple | None = None  # ((link template, _info_version), dashboard link)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("client", "_cluster", "_token", "_futures", "_channels", "_watchers",
                     "_workers", "_watching", "_done", "_info", "_info_version",
                     "_link"):  # fmt: skip
            state.pop(name, None)
        state["_user_client"] = None
        user = getattr(self, "_user_client", None)
        if user is not None:  # a copy connects to the same scheduler
            state["address"] = _scheduler_address(user)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset_runtime()

    @property
    def started(self) -> bool:
        return self.client is not None

    def _require_client(self) -> distributed.Client:
        client = self.client
        if client is None:
            raise NotStartedError(_NOT_STARTED)
        return client

    # --- lifecycle ----------------------------------------------------------------------------

    @contextmanager
    def start(self) -> Iterator[None]:
        """Create or connect to the cluster, yield, then stop pending work and close what was made."""
        if self.client is not None:
            raise RuntimeError("This DaskExecutor is already started")
        _quiet_stderr_logs()
        with ExitStack() as stack:
            if self._user_client is not None:
                client = _usable(self._user_client)  # the user's: never closed by nbexec
            elif self.address is not None:
                client = self._connect(stack)
            else:
                client = self._create(stack)
            self.client = client
            self._token = uuid.uuid4().hex
            self._done = DoneWatch(client)
            early = True
            try:
                _install_remote_module(client)
                path = self.performance_report_path
                if path is not None:
                    stack.enter_context(client.as_current())
                    stack.enter_context(distributed.performance_report(filename=os.fspath(path)))
                if self.watch_worker_status or (
                    self.watch_worker_status is None and not self.adapt_kwargs
                ):
                    client.subscribe_topic("all", self._on_scheduler_event)
                    self._watching = True
                early = True
                yield
                early = False  # left normally: running tasks are waited for, as in Prefect
            finally:
                try:
                    self._stop_work(client, early)
                finally:
                    self._reset_runtime()

    def _connect(self, stack: ExitStack) -> distributed.Client:
        self.logger.info("Connecting to an existing Dask cluster at %s", self.address)
        kwargs = dict(self.client_kwargs)
        timeout = float(kwargs.get("timeout", 10))
        kwargs.setdefault("timeout", timeout)
        security = kwargs.get("security")
        if not isinstance(security, distributed.Security):
            security = distributed.Security()  # picks up distributed's TLS settings from config
        probe_scheduler(self.address, security, timeout)
        try:
            client = distributed.Client(self.address, **kwargs)
        except (OSError, TimeoutError) as exc:
            raise type(exc)(
                f"Cannot connect to the Dask scheduler at {self.address}: {exc}"
            ) from exc
        stack.enter_context(client)
        return client

    def _create(self, stack: ExitStack) -> distributed.Client:
        cls = self.cluster_class
        self.logger.info("Creating a new Dask cluster with `%s`...", _qualname(cls))
        kwargs = dict(self.cluster_kwargs)
        if is_local_cluster(cls) and kwargs.get("processes", True):
            preload = kwargs.get("preload", dask.config.get("distributed.worker.preload", []))
            preload = [preload] if isinstance(preload, str) else list(preload or [])
            kwargs["preload"] = [*preload, remote.__file__]
        cluster = cls(**kwargs)
        if hasattr(cluster, "__exit__"):
            stack.enter_context(cluster)
        elif hasattr(cluster, "close"):
            stack.callback(cluster.close)
        self._cluster = cluster
        link = getattr(cluster, "dashboard_link", None)
        if link:
            self.logger.info("The Dask dashboard is available at %s", link)
        if self.scale is not None:
            cluster.scale(self.scale)
        if self.adapt_kwargs:
            cluster.adapt(**self.adapt_kwargs)
        client = distributed.Client(cluster, **self.client_kwargs)
        stack.enter_context(client)
        return client

    def _stop_work(self, client: distributed.Client, early: bool = True) -> None:
        """Exit semantics: pending work never starts; running work is stopped (a cluster nbexec
        created, left by an exception) or waited for."""
        created = self._cluster is not None and early
        token = self._token
        try:
            client.unsubscribe_topic("all")
        except Exception:  # noqa: BLE001 - not subscribed
            pass
        for channel in self._channels:
            channel.close()
        if self.disable_cancellation_event or token is None:
            return
        try:
            running = client.run(rt.stop_token, token, created, on_error="return")
        except Exception as exc:  # noqa: BLE001 - the cluster may already be gone
            self.logger.debug("Could not stop pending tasks: %r", exc)
            return
        if created:
            return  # closing the cluster stops what is still running
        keys = {k for ks in running.values() if isinstance(ks, list) for k in ks}
        futures = [f for f in list(self._futures.values()) if not f.done()]
        active = [f for f in futures if f.key in keys]
        pending = [f for f in futures if f.key not in keys]
        try:
            if pending:
                client.cancel(pending)
            if active:
                self.logger.info(
                    "Stopping executor, waiting for %d active tasks to complete", len(active)
                )
                with client.as_current():
                    distributed.wait(active)
        except Exception as exc:  # noqa: BLE001 - as the seed: errors here are swallowed
            self.logger.debug("Error while waiting for active tasks: %r", exc)

    # --- work ---------------------------------------------------------------------------------

    def submit(
        self, fn: Callable, /, *args: Any, extra_context: dict | None = None, **kwargs: Any
    ) -> Any:
        """Submit ``fn(*args, **kwargs)``; returns a ``distributed.Future``."""
        client = self._require_client()
        key = make_task_key(extra_context) or f"{funcname(fn)}-{uuid.uuid4().hex}"
        resources = parse_resources(extra_context.get("task_tags")) if extra_context else None
        token = None if self.disable_cancellation_event else self._token
        try:
            future = client.submit(
                rt.run_task,
                token,
                rt.ByValue(fn),
                args,
                kwargs,
                key=key,
                pure=False,
                resources=resources or None,
            )
        except (TypeError, pickle.PicklingError) as exc:
            _raise_if_unpicklable(exc, f"task {key!r}")
            raise
        if token is not None and self._cluster is None:
            self._futures[key] = future
        return future

    def submit_future(
        self, fn: Callable, /, *args: Any, extra_context: dict | None = None, **kwargs: Any
    ) -> Any:
        """Same as ``submit``: a ``distributed.Future`` has the ``concurrent.futures`` API."""
        return self.submit(fn, *args, extra_context=extra_context, **kwargs)

    def map(
        self, fn: Callable, *iterables: Iterable, extra_context: dict | None = None
    ) -> list[distributed.Future]:
        """Submit ``fn`` over ``iterables`` in one ``client.map`` call (nbexec extension)."""
        client = self._require_client()
        items = list(zip(*iterables, strict=False))
        context = dict(extra_context or {})
        keys = []
        for i in range(len(items)):
            key = make_task_key({**context, "task_index": i}) if context.get("task_name") else None
            keys.append(key or f"{funcname(fn)}-{i}-{uuid.uuid4().hex}")
        resources = parse_resources(context.get("task_tags")) or None
        token = None if self.disable_cancellation_event else self._token
        call = rt.MapCall(token, fn)
        try:
            futures = (
                client.map(
                    call, *zip(*items, strict=True), key=keys, pure=False, resources=resources
                )
                if items
                else []
            )
        except (TypeError, pickle.PicklingError) as exc:
            _raise_if_unpicklable(exc, f"the {len(keys)} tasks {keys[0].rsplit('-', 2)[0]!r}")
            raise
        if token is not None and self._cluster is None:
            for future in futures:
                self._futures[future.key] = future
        return futures

    def on_done(self, future: Any, callback: Callable[[Any], None]) -> None:
        """Call ``callback(future)`` when ``future`` is done: installed on the client's event loop
        in batches, run there for finished and cancelled futures (see ``_dask_done``)."""
        done = self._done
        if done is None or not isinstance(future, distributed.Future):
            future.add_done_callback(callback)
        else:
            done.add(future, callback)

    def wait(self, futures: Any) -> Any:
        """Resolve every future inside ``futures`` (nested lists, tuples, dicts)."""
        return self._require_client().gather(futures)

    # --- nbexec extensions --------------------------------------------------------------------

    def event_channel(self, callback: EventCallback) -> EventChannel:
        """A per-executor event topic: ``emit`` on a worker reaches ``callback`` here."""
        client = self._require_client()
        topic = f"nbexec-events-{uuid.uuid4().hex}"
        logger = self.logger

        def handler(event: tuple) -> None:
            try:
                for key, name, info in event[1]:
                    callback(key, name, info)
            except Exception:  # noqa: BLE001 - never break the client's event loop
                logger.exception("Error in event callback")

        client.subscribe_topic(topic, handler)

        def close() -> None:
            try:
                client.unsubscribe_topic(topic)
            except Exception:  # noqa: BLE001 - client closed or already unsubscribed
                pass

        channel = EventChannel(rt.Emitter(topic, callback), close)
        self._channels.append(channel)
        return channel

    def interrupt(self, futures: Iterable[Any]) -> None:
        """Cancel ``futures``; on a cluster nbexec created also stop the running ones."""
        client = self.client
        futs = [f for f in futures if isinstance(f, distributed.Future)]
        if client is None or not futs:
            for f in futs:
                f.cancel()
            return
        keys = [str(f.key) for f in futs]
        client.cancel(futs)
        if self._cluster is not None:
            client.run(rt.interrupt_keys, keys, on_error="return")
        free_stuck_workers(self, keys, self._cluster is not None)

    async def on_worker_status_changed(self, op: str, message: Any) -> None:
        """Hook called for worker events: ``("add", {"workers": {addr: {}}})`` or ``("remove", addr)``."""
        if op == "add":
            for worker in message.get("workers", ()):
                self.logger.debug("Worker %s added", worker)
        elif op == "remove":
            self.logger.debug("Worker %s removed", message)

    async def _on_scheduler_event(self, event: tuple) -> None:
        msg = event[1]
        action = msg.get("action") if isinstance(msg, dict) else None
        if action in ("add-worker", "remove-worker"):
            self._info = None
            self._info_version += 1
        try:
            if action == "add-worker":
                self._notify_watchers("add", msg["worker"])
                await self.on_worker_status_changed("add", {"workers": {msg["worker"]: {}}})
            elif action == "remove-worker":
                self._notify_watchers("remove", msg["worker"])
                await self.on_worker_status_changed("remove", msg["worker"])
        except Exception:  # noqa: BLE001 - as the seed: logged, never raised
            self.logger.debug("Failure while watching dask worker events", exc_info=True)

    def watch_workers(self, callback: Callable[[str, str | None, int], None]) -> Callable[[], None]:
        """Call ``callback(op, worker, n_workers)`` on worker events while started (nbexec extension).

        ``op`` is "now" (once, at once, with the current count), "add" or "remove". Returns a
        function that stops the calls. Needs the worker-status watch (on unless adaptive).
        """
        client = self._require_client()
        if not self._watching:
            return lambda: None
        if self._workers is None:
            self._workers = set(self._scheduler_info(client).get("workers", {}))
        self._watchers.append(callback)
        callback("now", None, len(self._workers))

        def stop() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return stop

    def _notify_watchers(self, op: str, worker: str) -> None:
        workers = self._workers
        if workers is None:
            return
        if op == "add":
            workers.add(worker)
        else:
            workers.discard(worker)
        for callback in list(self._watchers):
            try:
                callback(op, worker, len(workers))
            except Exception:  # noqa: BLE001 - never break the client's event loop
                self.logger.exception("Error in worker watch callback")

    def describe(self) -> ExecutorInfo:
        """Workers, threads, memory, dashboard link and scheduler address (while started)."""
        client = self.client
        if client is None:
            return ExecutorInfo(mode="dask", address=self.address)
        info = self._scheduler_info(client)
        workers = info.get("workers", {})
        busy = busy_report(self)  # a round trip only after an interrupt left busy threads
        return ExecutorInfo(
            mode="dask",
            extra={**({"busy": busy} if busy else {}), **self._client_extra()},
            workers=len(workers),
            threads=sum(w.get("nthreads", 0) for w in workers.values()),
            memory=sum(w.get("memory_limit") or 0 for w in workers.values()),
            dashboard_link=self._dashboard_link(client),
            address=info.get("address") or client.scheduler.address,
        )

    def _client_extra(self) -> dict:
        return {"client": "user"} if self._user_client is not None else {}

    def _scheduler_info(self, client: distributed.Client) -> dict:
        """``client.scheduler_info`` of every worker; while worker events are watched, fetched
        again only after a worker came or went (a cell describes its executor: no round trip)."""
        info = self._info
        if info is None:
            version = self._info_version
            info = client.scheduler_info(n_workers=-1)
            if self._watching and version == self._info_version:
                self._info = info
        return info

    def _dashboard_link(self, client: distributed.Client) -> str | None:
        """``client.dashboard_link`` (a scheduler round trip), kept like ``_scheduler_info``."""
        key = (dask.config.get("distributed.dashboard.link", None), self._info_version)
        cached = self._link
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            link = client.dashboard_link
        except Exception:  # noqa: BLE001 - e.g. the link template names a missing env var
            link = None
        if self._watching and key[1] == self._info_version:
            self._link = (key, link)
        return link

    # --- dask collections (nbexec extensions) -----------------------------------------------

    #: ``dask_get(..., sync=False)`` returns futures whose data stays on the workers.
    dask_keeps_results = True

    def dask_get(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        """A dask scheduler ``get`` on this executor's client (``sync=False``: futures)."""
        return self._require_client().get(dsk, keys, **kwargs)

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

        A client the user made is the default already and stays so.
        """
        from distributed.client import _del_global_client, _get_global_client, _set_global_client

        client = self._require_client()
        if _get_global_client() is client:
            yield
            return
        _set_global_client(client)
        try:
            with dask.config.set(scheduler="dask.distributed"):
                yield
        finally:
            _del_global_client(client)

    @property
    def user_client(self) -> bool:
        """Whether this executor runs on a Client the user made (which nbexec never closes)."""
        return self._user_client is not None

    @property
    def performance_report(self) -> str:
        """The performance report's HTML ("" with a logged warning when there is none)."""
        if self.performance_report_path is None:
            self.logger.warning(
                "Executor was not configured with a performance_report_path, no report available"
            )
            return ""
        try:
            with open(self.performance_report_path, encoding="utf-8") as f:
                return f.read()
        except OSError:
            self.logger.exception("Failed to read the performance report")
            return ""


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


def _scheduler_address(client: Any) -> str | None:
    try:
        return client.scheduler.address
    except Exception:  # noqa: BLE001 - a closed client
        return None


def _usable(client: distributed.Client) -> distributed.Client:
    if client.status not in ("running", "newly-created"):
        raise RuntimeError(
            f"the Client you made (scheduler {_scheduler_address(client)!r}) is {client.status}; "
            "create it again, or run `%executor dask` with options to let nbexec start a cluster"
        )
    return client
