"""After an interrupt on Dask: find worker threads still inside interrupted tasks and free them.

A task blocked in C (``time.sleep``, a socket read) does not see the exception raised in its
thread until the call returns, and holds one of the worker's threads meanwhile: the next cell's
tasks would queue behind it. On a cluster nbexec created, that thread leaves the worker's pool as
with ``secede()`` and a new one takes its place (``release_threads``); where that fails, the
worker process is killed and its nanny starts a new one (the interrupted tasks were cancelled
first, so the scheduler does not rerun them). On an
external cluster nothing is killed (other people's work lives there) and the busy threads are
reported by ``describe()``, counted by why their tasks were stopped (timed out, or interrupted).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from ..runtime._taskcall import _nbexec_remote as rt

__all__ = ["free_stuck_workers", "busy_report", "note_stopped", "GRACE", "INTERRUPTED"]

#: Seconds an interrupted task gets to leave its thread before its worker counts as stuck (none
#: when a task timed out: the worker's watchdog already raised in it and it did not leave).
GRACE = 0.4
logger = logging.getLogger("nbexec.dask")


def free_stuck_workers(executor: Any, keys: list[str], created: bool) -> threading.Thread:
    """In the background: restart (created cluster) or report (external) workers still running
    ``keys`` after ``GRACE`` seconds. Returns the thread doing it."""
    thread = threading.Thread(
        target=_free, args=(executor, executor.client, keys, created), daemon=True,
        name="nbexec-free-stuck",
    )  # fmt: skip
    thread.start()
    return thread


def _free(executor: Any, client: Any, keys: list[str], created: bool) -> None:
    notes = executor.__dict__.get(_WHY_ATTR) or {}
    if not any(notes.get(k) == "timed out" for k in keys):  # a timed-out task is known stuck:
        time.sleep(GRACE)  # the worker's watchdog raised in it a margin ago, and it is still there
    if client is None or executor.client is not client:
        return
    try:
        busy = client.run(rt.still_running, keys, on_error="return")
    except Exception as exc:  # noqa: BLE001 - the cluster may be closing
        logger.debug("Could not look for stuck workers: %r", exc)
        return
    stuck = {addr: ks for addr, ks in busy.items() if isinstance(ks, list) and ks}
    if not stuck:
        return
    if created:
        try:
            freed = client.run(rt.release_threads, keys, workers=list(stuck), on_error="return")
        except Exception as exc:  # noqa: BLE001 - the cluster may be closing
            logger.debug("Could not free stuck worker threads: %r", exc)
            freed = {}
        left = [a for a in stuck if not (isinstance(freed.get(a), list) and freed[a])]
        if not left or _kill_for_restart(client, left):
            return
    busy_map = getattr(executor, "_busy_after_interrupt", None)
    if busy_map is not None:
        for addr, ks in stuck.items():
            busy_map[addr] = busy_map.get(addr, set()) | set(ks)


#: The executor attribute ``{key: why it was stopped}`` for keys not stopped by an interrupt or a
#: cancel (``note_stopped``); the busy report words its counts by it.
_WHY_ATTR = "_nbexec_stopped_why"
#: How ``busy_report`` names keys stopped without a note.
INTERRUPTED = "interrupted or cancelled"


def note_stopped(executor: Any, keys: list[str], why: str) -> None:
    """Record why ``keys`` are being stopped (e.g. "timed out"), before ``executor.interrupt``."""
    notes = executor.__dict__.setdefault(_WHY_ATTR, {})
    for key in keys:
        notes[str(key)] = why


def busy_report(executor: Any) -> dict[str, dict[str, int]]:
    """``{worker address: {why: threads still running tasks stopped for that reason}}`` (``why``:
    "timed out", ``INTERRUPTED``), refreshed from the workers."""
    busy_map = getattr(executor, "_busy_after_interrupt", None)
    client = executor.client
    if not busy_map or client is None:
        return {}
    keys = sorted({k for ks in busy_map.values() for k in ks})
    try:
        now = client.run(rt.still_running, keys, workers=list(busy_map), on_error="return")
    except Exception:  # noqa: BLE001 - report what we knew
        return _by_reason(executor, busy_map)
    busy_map.clear()
    for addr, ks in now.items():
        if isinstance(ks, list) and ks:
            busy_map[addr] = set(ks)
    notes = executor.__dict__.get(_WHY_ATTR)
    if notes:  # forget the keys no thread runs any more
        running = {k for ks in busy_map.values() for k in ks}
        for key in [k for k in notes if k not in running]:
            del notes[key]
    return _by_reason(executor, busy_map)


def _by_reason(executor: Any, busy_map: dict[str, set]) -> dict[str, dict[str, int]]:
    notes = executor.__dict__.get(_WHY_ATTR) or {}
    report: dict[str, dict[str, int]] = {}
    for addr, ks in busy_map.items():
        counts = report[addr] = {}
        for key in ks:
            why = notes.get(key, INTERRUPTED)
            counts[why] = counts.get(why, 0) + 1
    return report


def _kill_for_restart(client: Any, workers: list[str]) -> bool:
    """SIGKILL the processes of ``workers`` (local, under a nanny, which starts a new one at once).

    A graceful restart would wait for the stuck thread: interpreter exit joins the worker's
    threads. False if the workers run in this process (no nanny) or on another host.
    """
    try:
        pids = client.run(os.getpid, workers=workers, on_error="return")
        nanny = client.run(_has_nanny, workers=workers, on_error="return")
    except Exception as exc:  # noqa: BLE001 - the cluster may be closing
        logger.debug("Could not reach stuck workers %s: %r", workers, exc)
        return False
    me = os.getpid()
    targets = [pid for addr, pid in pids.items() if isinstance(pid, int) and pid != me
               and nanny.get(addr) is True]  # fmt: skip
    if len(targets) != len(workers):
        return False
    for pid in targets:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return True


def _has_nanny(dask_worker: Any = None) -> bool:
    return getattr(dask_worker, "nanny", None) is not None
