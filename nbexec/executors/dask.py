"""DaskExecutor: Prefect 1's DaskExecutor on dask.distributed, with nbexec's fixes.

Differences from Prefect 1's (see DESIGN.md): arguments that would have no effect are refused; a
cluster class named by string must be a ``distributed.deploy.Cluster``; the scheduler is reached
within a bounded time; cancellation on exit costs no scheduler round trip per task (a worker-local
flag set once per worker); the performance report is really written; worker events come from
distributed's event topics; user kwargs named key/pure/resources reach the function; nbexec's task
code (``_nbexec_remote``) reaches the scheduler and each worker once, not with every task.
"""

from __future__ import annotations

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
from ._dask_args import check_arguments, scheduler_address, usable_client
from ._dask_collections import OWN, DaskCollections
from ._dask_done import DoneWatch
from ._dask_events import ClusterEvents
from ._dask_stuck import free_stuck_workers, note_stopped
from ._dask_support import (
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


class DaskExecutor(ClusterEvents, DaskCollections, Executor):
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
        (cluster_class, cluster_kwargs, adapt_kwargs, client_kwargs) = check_arguments(
            address,
            cluster_class,
            cluster_kwargs,
            adapt_kwargs,
            client_kwargs,
            debug,
            scale,
            client,
            performance_report_path,
        )
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
        self._event_topic: str | None = None  # one per executor, subscribed on the first channel
        self._event_callbacks: dict[str, EventCallback] = {}
        self._watchers: list[Callable[[str, str | None, int], None]] = []
        self._workers: set[str] | None = None
        self._watching = False
        self._done: DoneWatch | None = None
        self._info: dict | None = None  # scheduler_info, kept while worker events say it holds
        self._info_version = 0
        self._link: tuple | None = None  # ((link template, _info_version), dashboard link)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("client", "_cluster", "_token", "_futures", "_channels", "_event_topic",
                     "_event_callbacks", "_watchers", "_workers", "_watching", "_done", "_info",
                     "_info_version", "_link"):  # fmt: skip
            state.pop(name, None)
        state["_user_client"] = None
        user = getattr(self, "_user_client", None)
        if user is not None:  # a copy connects to the same scheduler
            state["address"] = scheduler_address(user)
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
                client = usable_client(self._user_client)  # the user's: never closed by nbexec
            elif self.address is not None:
                client = self._connect(stack, self.address)
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

    def _connect(self, stack: ExitStack, address: str) -> distributed.Client:
        self.logger.info("Connecting to an existing Dask cluster at %s", address)
        kwargs = dict(self.client_kwargs)
        timeout = float(kwargs.get("timeout", 10))
        kwargs.setdefault("timeout", timeout)
        security = kwargs.get("security")
        if not isinstance(security, distributed.Security):
            security = distributed.Security()  # picks up distributed's TLS settings from config
        probe_scheduler(address, security, timeout)
        try:
            client = distributed.Client(address, **kwargs)
        except (OSError, TimeoutError) as exc:
            raise type(exc)(f"Cannot connect to the Dask scheduler at {address}: {exc}") from exc
        stack.enter_context(client)
        return client

    def _create(self, stack: ExitStack) -> distributed.Client:
        cls = self.cluster_class or LocalCluster  # the class __init__ picks when none is given
        self.logger.info("Creating a new Dask cluster with `%s`...", _qualname(cls))
        kwargs = dict(self.cluster_kwargs or {})
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
        self._close_event_topic(client)
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
        except Exception as exc:  # noqa: BLE001 - as Prefect 1: errors here are swallowed
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
        OWN.on = True  # counted by the run already
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
        finally:
            OWN.on = False
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
        OWN.on = True  # counted by the run already
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
        finally:
            OWN.on = False
        if token is not None and self._cluster is None:
            for future in futures:
                self._futures[future.key] = future
        return futures

    def gather(self, futures: list[Any]) -> list[Any]:
        """The results of ``futures`` in one ``client.gather`` (nbexec extension)."""
        return self.wait(list(futures))

    #: A worker thread blocked in C misses its task's own timer: the kernel watches timeouts too.
    watch_timeouts = True

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

    def note_stop_reason(self, keys: list[str], why: str) -> None:
        """Why ``keys`` are stopped, for the busy report of ``%executor status``."""
        note_stopped(self, keys, why)

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
