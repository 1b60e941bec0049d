"""Task events (running, retrying, output...) on their way to the kernel: ``Emitter`` logs them to
a Dask topic, batched per worker, or calls the kernel's callback where it was made."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ._context import _worker_or_none


def _new_emitter(topic: str, channel: str, pid: int) -> Emitter:
    emitter = Emitter(topic, channel)
    emitter._pid = pid
    return emitter


class Emitter:
    """Picklable ``emit(key, event, info)`` that logs ``[[channel, key, event, info], ...]`` to a
    Dask topic.

    One topic serves every run of an executor; ``channel`` names the run's channel, so the
    executor's handler passes each entry to that run's callback. On a worker, events are batched
    per worker and topic (one ``log_event`` per ``FLUSH_DELAY``, so the scheduler and the client
    handle one message per batch, not per event), in order; elsewhere it calls the local callback
    when it is in the process that made it, else the current client's ``log_event``.
    """

    __slots__ = ("topic", "channel", "_local", "_pid")

    def __init__(
        self, topic: str, channel: str, local: Callable[[str, str, dict], None] | None = None
    ):
        self.topic = topic
        self.channel = channel
        self._local = local
        self._pid = os.getpid()

    def __reduce__(self) -> tuple:
        return (_new_emitter, (self.topic, self.channel, self._pid))  # the callback stays here

    def __call__(self, key: str, event: str, info: dict | None = None) -> None:
        worker = _worker_or_none()
        if worker is not None:
            _buffer_event(worker, self.topic, [self.channel, key, event, info or {}])
        elif self._local is not None and os.getpid() == self._pid:
            self._local(key, event, info or {})
        else:
            from distributed import get_client

            get_client().log_event(self.topic, [[self.channel, key, event, info or {}]])


#: Seconds: events from one worker reach the scheduler (and the client) in batches this often.
FLUSH_DELAY = 0.1


def _buffer_event(worker: Any, topic: str, msg: list) -> None:
    """Queue ``msg`` (``[channel, key, event, info]``) and send the queue as one ``log_event``
    at most every ``FLUSH_DELAY``.

    The first event after a quiet spell goes out at once (on the worker's stream it then reaches
    the scheduler before the task's result), later ones wait for the next slot: one message per
    batch, and a one-task cell's "running" does not trail its result by a whole delay. So does
    the first event of a channel this worker has not sent for yet: the topic serves every run of
    an executor, and a cell that follows another within ``FLUSH_DELAY`` starts its own spell.
    """
    buffers = worker.__dict__.get("_nbexec_events")
    if buffers is None:
        buffers = worker.__dict__.setdefault("_nbexec_events", {})
    entry = buffers.get(topic)
    if entry is None:
        entry = buffers.setdefault(topic, (threading.Lock(), [], [0.0], set()))
    lock, pending, last_flush, channels = entry
    channel = msg[0]
    with lock:
        pending.append(msg)
        first = len(pending) == 1
        fresh = channel not in channels
        if fresh:
            if len(channels) >= 64:
                channels.clear()  # only recent runs matter; an old one would merely flush early
            channels.add(channel)
    if first or fresh:

        def flush() -> None:
            with lock:
                batch = pending[:]
                pending.clear()
                last_flush[0] = time.monotonic()
            if batch:
                worker.log_event(topic, batch)

        wait = 0.0 if fresh else last_flush[0] + FLUSH_DELAY - time.monotonic()
        if wait <= 0:
            worker.loop.add_callback(flush)
        else:
            worker.loop.add_callback(worker.loop.call_later, wait, flush)


class _PartSender:
    """``send(at, parts)`` of a TaskCall's ``LiveOutput``: an "output" event of its task.

    Called from the sending thread, where no Dask worker is current: on a worker the event
    joins the batch of the worker that runs the task (found when the task started)."""

    __slots__ = ("emit", "task_id", "worker")

    def __init__(self, emit: Callable, task_id: Any) -> None:
        self.emit = emit
        self.task_id = task_id
        self.worker = _worker_or_none() if type(emit).__name__ == "Emitter" else None

    def __call__(self, at: int, parts: list) -> None:
        info = {"at": at, "parts": parts}
        if self.worker is not None:
            emit: Any = self.emit  # an Emitter (checked when the task started)
            _buffer_event(self.worker, emit.topic, [emit.channel, self.task_id, "output", info])
        else:
            self.emit(self.task_id, "output", info)
