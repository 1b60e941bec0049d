"""DaskExecutor's view of the cluster: event topics, worker comings and goings, its description."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import dask
import distributed

from ..runtime._taskcall import _nbexec_remote as rt
from ._dask_args import scheduler_address
from ._dask_stuck import busy_report
from .base import EventCallback, EventChannel, ExecutorInfo


class ClusterEvents:
    """Event channels, worker watches and ``describe`` for ``DaskExecutor`` (a mixin)."""

    logger: logging.Logger
    address: str | None
    client: distributed.Client | None
    _user_client: distributed.Client | None
    _channels: list[EventChannel]
    _event_topic: str | None
    _event_callbacks: dict[str, EventCallback]
    _watchers: list[Callable[[str, str | None, int], None]]
    _workers: set[str] | None
    _watching: bool
    _info: dict | None
    _info_version: int
    _link: tuple | None

    def _require_client(self) -> distributed.Client:
        raise NotImplementedError

    def event_channel(self, callback: EventCallback) -> EventChannel:
        """A channel on the executor's event topic: ``emit`` on a worker reaches ``callback`` here.

        The topic is subscribed once, on the first channel, and serves every run until shutdown
        (``_close_event_topic``): a run costs the scheduler no subscribe/unsubscribe messages.
        Each entry names its channel; entries of a closed channel are dropped.
        """
        client = self._require_client()
        callbacks = self._event_callbacks
        topic = self._event_topic
        if topic is None:
            topic = f"nbexec-events-{uuid.uuid4().hex}"
            client.subscribe_topic(topic, self._event_handler(callbacks))
            self._event_topic = topic
        cid = uuid.uuid4().hex[:16]
        callbacks[cid] = callback

        def local(key: str, name: str, info: dict) -> None:
            target = callbacks.get(cid)
            if target is not None:
                target(key, name, info)

        channels = self._channels
        channel: EventChannel

        def close() -> None:
            callbacks.pop(cid, None)
            if channel in channels:
                channels.remove(channel)

        channel = EventChannel(rt.Emitter(topic, cid, local), close)
        channels.append(channel)
        return channel

    def _event_handler(self, callbacks: dict[str, EventCallback]) -> Callable[[tuple], None]:
        logger = self.logger

        def handler(event: tuple) -> None:
            for cid, key, name, info in event[1]:
                callback = callbacks.get(cid)
                if callback is None:
                    continue  # its channel is closed
                try:
                    callback(key, name, info)
                except Exception:  # noqa: BLE001 - never break the client's event loop
                    logger.exception("Error in event callback")

        return handler

    def _close_event_topic(self, client: distributed.Client) -> None:
        """Close every channel and unsubscribe the topic (a user's client stays open)."""
        for channel in list(self._channels):
            channel.close()
        topic, self._event_topic = self._event_topic, None
        if topic is not None and client.status not in ("closing", "closed"):
            try:
                client.unsubscribe_topic(topic)
            except Exception:  # noqa: BLE001 - the client closed meanwhile
                pass

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
        except Exception:  # noqa: BLE001 - as Prefect 1: logged, never raised
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
            address=info.get("address") or scheduler_address(client),
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
