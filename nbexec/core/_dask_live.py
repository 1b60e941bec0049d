"""Live counts for dask graphs running on a Dask cluster, read from the scheduler while they run.

One poller per run (a daemon thread) asks each client's scheduler, at most ``1/INTERVAL`` times a
second (less when a poll takes long), for the states of the run's graphs' open tasks: one ``run_on_scheduler`` message per poll
(never one per task), answered only with the tasks that moved on. The scheduler function travels by
value (the scheduler need not have nbexec). The thread ends when the run's last graph ends.

A task is "running" while it executes on a worker (the worker's heartbeat lists it, or the worker
has no more tasks than threads), done when it is in memory or when a task depending on it started
(its result was there: released intermediates are done), failed where the scheduler blames it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["LivePoll", "Watch", "error_text", "INTERVAL"]

#: Seconds between two polls of a scheduler (more when many tasks are open; see ``_interval``).
INTERVAL = 0.25
#: Failed tasks per graph whose exception is fetched to show it as the local modes do.
_FETCHED_ERRORS = 5


def error_text(error: BaseException | str, key: Any = None) -> str:
    """A failed task's table text: ``Type: message``, naming the task's key when known."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if key is None else f"{text} (task {_key_text(key)})"


def _key_text(key: Any) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(repr(k) for k in key) + ")"
    return str(key)


def _scheduler_function() -> Any:
    """The function polls run on the scheduler; nested, so cloudpickle ships it by value."""

    def moved_on(dask_scheduler: Any, keys: list) -> dict:
        """``{key: "running" | "memory" | ("erred", text) | "erred-upstream"}`` for those of
        ``keys`` past waiting; pending ones are left out, so the reply stays small."""
        out: dict = {}
        tasks = dask_scheduler.tasks
        for key in keys:
            ts = tasks.get(key)
            if ts is None:
                continue
            state = ts.state
            if state == "processing":
                ws = ts.processing_on
                if ws is not None and (ts in ws.executing or len(ws.processing) <= ws.nthreads):
                    out[key] = "running"
            elif state == "memory":
                out[key] = "memory"
            elif state == "erred":
                if ts.exception_blame is ts:
                    out[key] = ("erred", ts.exception_text or "")
                else:
                    out[key] = "erred-upstream"
        return out

    return moved_on


_moved_on = _scheduler_function()


class Watch:
    """One graph on one client: its rows' ids by key, what is still open, its dependencies."""

    def __init__(self, client: Any, tracker: Any, ids: dict, graph: dict):
        self.client, self.tracker, self.ids = client, tracker, ids
        self.deps = {k: getattr(graph.get(k), "dependencies", ()) for k in ids}
        self.open = set(ids)
        self.running: set = set()
        self.failed: dict = {}  # key -> text shown
        self.stopped = False

    def _done(self, key: Any) -> None:
        stack = [key]
        while stack:
            key = stack.pop()
            if key not in self.open:
                continue
            self.open.discard(key)
            self.tracker.finish(self.ids[key], "success")
            stack.extend(d for d in self.deps.get(key, ()) if d in self.open)

    def _started(self, key: Any) -> None:
        for dep in self.deps.get(key, ()):
            self._done(dep)

    def apply(self, moved: dict) -> None:
        """Move the rows to the scheduler's states (the caller holds the poll's lock)."""
        for key, state in moved.items():
            if key not in self.open:
                continue
            if state == "running":
                self._started(key)
                if key not in self.running:
                    self.running.add(key)
                    self.tracker.running(self.ids[key])
            elif state == "memory":
                self._done(key)
            elif isinstance(state, tuple):  # erred here
                self._started(key)
                self.fail(key, state[1])

    def fail(self, key: Any, text: str | None = None) -> None:
        """Show ``key`` failed, with its exception as the local modes show it when it can be had."""
        if key not in self.open:
            return
        error: Any = text or "failed"
        if len(self.failed) < _FETCHED_ERRORS:
            error = _fetch_error(self.client, key) or error
        shown = self.failed[key] = error_text(error, key)
        self.open.discard(key)
        self.tracker.finish(self.ids[key], "failed", shown)


def _fetch_error(client: Any, key: Any) -> BaseException | None:
    try:
        from distributed import Future

        return Future(key, client).exception(timeout=5)
    except Exception:  # noqa: BLE001 - released meanwhile, or the client is closing
        return None


def _interval(last_poll: float) -> float:
    """Seconds to the next poll: ``INTERVAL``, or 20 times what the last poll took when that is
    longer (very large graphs, a loaded scheduler; at most 5 s): polls then take under 5% of the
    time."""
    return min(max(INTERVAL, 20 * last_poll), 5.0)


class LivePoll:
    """The run's poller: watches graphs on clients, polls their schedulers on one thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: list[Watch] = []
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        #: Polls sent so far (all clients), for tests and benchmarks.
        self.polls = 0

    def watch(self, client: Any, tracker: Any, ids: dict, graph: dict) -> Watch:
        """Start following a graph's tasks on ``client``; ``unwatch`` it when it ended."""
        watch = Watch(client, tracker, ids, graph)
        with self._lock:
            self._watches.append(watch)
            if self._thread is None:
                self._wake.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="nbexec-dask-live", daemon=True
                )
                self._thread.start()
        return watch

    def unwatch(self, watch: Watch) -> None:
        """Stop moving ``watch``'s rows (no update lands after this returns)."""
        with self._lock:
            watch.stopped = True
            if watch in self._watches:
                self._watches.remove(watch)
            if not self._watches:
                self._wake.set()

    def _loop(self) -> None:
        took = 0.0
        while True:
            self._wake.wait(_interval(took))
            by_client: dict[int, tuple[list[Watch], list]] = {}
            with self._lock:
                if not self._watches:
                    self._thread = None
                    return
                self._wake.clear()
                for watch in self._watches:
                    watches, open_keys = by_client.setdefault(id(watch.client), ([], []))
                    watches.append(watch)
                    open_keys.extend(watch.open)
            took = 0.0
            for watches, keys in by_client.values():
                if not keys:
                    continue
                started = time.perf_counter()
                try:
                    moved = watches[0].client.run_on_scheduler(_moved_on, keys=keys)
                except Exception:  # noqa: BLE001 - closing, or not reachable: the end settles it
                    continue
                finally:
                    self.polls += 1
                    took += time.perf_counter() - started
                if not moved:
                    continue
                with self._lock:
                    for one in watches:
                        if not one.stopped:
                            one.apply(moved)
