"""100 swaps of the session executor among all modes, each with a small run, leak nothing.

Threads (threading.enumerate), child processes (psutil, recursive), open file descriptors and
listening sockets of this process return to their baseline, measured after one warm-up cycle
(distributed, the process pool and bokeh create a few singletons once per process).
"""

from __future__ import annotations

import gc
import itertools
import threading
import time

import psutil
import pytest
from reliability_helpers import listening

import nbexec
from nbexec import session

pytestmark = pytest.mark.reliability

CYCLE = [
    ("threads", {"workers": 2}),
    ("local", {}),
    ("processes", {"workers": 2}),
    ("sync", {}),
    ("dask", {"processes": False, "workers": 1, "threads_per_worker": 2}),
]
SWAPS = 100


def square(x):
    return x * x


def _measure() -> dict[str, object]:
    me = psutil.Process()
    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        # Direct children only: what nbexec starts (pool children, cluster workers) is a child of
        # this process; grandchildren belong to other fixtures' processes (a CLI worker restarted
        # by its nanny, a JupyterLab kernel) and come and go on their own.
        "children": sorted(p.pid for p in me.children(recursive=False)),
        "fds": me.num_fds(),
        "listening": sorted(listening([me.pid])),
    }


def _describe(pids: list[int]) -> list[str]:
    out = []
    for pid in pids:
        try:
            out.append(f"{pid} {' '.join(psutil.Process(pid).cmdline())[:120]}")
        except psutil.Error:
            out.append(f"{pid} (gone)")
    return out


def _settle(baseline: dict, timeout: float = 15.0) -> dict:
    """Measure until back at ``baseline`` (threads and processes take a moment to end)."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        now = _measure()
        if _deltas(baseline, now) == {"threads": 0, "children": 0, "fds": 0, "listening": 0}:
            return now
        if time.monotonic() > deadline:
            return now
        time.sleep(0.2)


def _deltas(before: dict, after: dict) -> dict[str, int]:
    return {
        "threads": len(after["threads"]) - len(before["threads"]),
        "children": len(after["children"]) - len(before["children"]),
        "fds": after["fds"] - before["fds"],
        "listening": len(after["listening"]) - len(before["listening"]),
    }


def _swap(mode: str, options: dict) -> None:
    nbexec.use(mode, **options)
    with nbexec.run() as run:
        futures = nbexec.map(square, range(6))
        dep = nbexec.submit(sum, futures)
    assert dep.result() == sum(i * i for i in range(6)), (mode, run.summary())


def test_hundred_swaps_leak_nothing(monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    session.stop()
    for mode, options in CYCLE:  # warm-up: singletons of distributed, the pool, asyncio
        _swap(mode, options)
    nbexec.use("local")
    time.sleep(0.5)  # let the warm-up's last threads and processes end
    gc.collect()
    baseline = _measure()
    peak = {"threads": 0, "children": 0, "fds": 0}
    t0 = time.monotonic()
    swaps = {mode: 0 for mode, _ in CYCLE}
    try:
        for mode, options in itertools.islice(itertools.cycle(CYCLE), SWAPS):
            _swap(mode, options)
            swaps[mode] += 1
            now = _measure()
            peak = {k: max(peak[k], _deltas(baseline, now)[k]) for k in peak}
    finally:
        nbexec.use("local")
    took = time.monotonic() - t0
    after = _settle(baseline)
    deltas = _deltas(baseline, after)
    print(f"\n{SWAPS} swaps {swaps} in {took:.1f} s; deltas after settling: {deltas}; "
          f"peak while swapping: {peak}")  # fmt: skip
    extra_threads = sorted(set(after["threads"]) - set(baseline["threads"]))
    assert deltas["threads"] <= 0, f"threads left: {extra_threads}"
    extra = sorted(set(after["children"]) - set(baseline["children"]))
    assert deltas["children"] <= 0, f"children left: {_describe(extra)}"
    assert deltas["listening"] <= 0, f"listening sockets left: {after['listening']}"
    assert deltas["fds"] <= 2, f"file descriptors: {baseline['fds']} -> {after['fds']}"
    session.stop()
