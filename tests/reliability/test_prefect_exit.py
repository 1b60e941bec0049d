"""Leaving ``start()`` on a temporary in-process Dask cluster: normally, running tasks are waited
for (as Prefect 1 does); by an exception, they are stopped and have no further effect. A
processes ``LocalDaskExecutor`` starts without waiting for its children (printed for the README)."""

from __future__ import annotations

import sys
import time

import cloudpickle
import pytest

from nbexec.executors import DaskExecutor, LocalDaskExecutor

pytestmark = pytest.mark.reliability
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def slow(path):
    time.sleep(1.5)
    open(path, "w").close()
    return "done"


def _executor():
    return DaskExecutor(
        cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": 1}
    )


def test_normal_exit_waits_for_running_tasks(tmp_path):
    marker = tmp_path / "done"
    with _executor().start() as _:
        pass  # the cluster starts
    ex = _executor()
    with ex.start():
        f = ex.submit(slow, str(marker))
        time.sleep(0.5)  # running now
    assert marker.exists(), "leaving start() normally killed a running task"
    del f


def test_exit_by_exception_stops_running_tasks(tmp_path):
    marker = tmp_path / "done"
    ex = _executor()
    with pytest.raises(RuntimeError, match="leave"):
        with ex.start():
            ex.submit(slow, str(marker))
            time.sleep(0.5)
            raise RuntimeError("leave")
    time.sleep(2)
    assert not marker.exists(), "an interrupted task ran on"


def test_processes_pool_starts_without_waiting_for_children():
    times = []
    for _ in range(5):
        ex = LocalDaskExecutor("processes")
        t0 = time.perf_counter()
        cm = ex.start()
        cm.__enter__()
        times.append(time.perf_counter() - t0)
        assert ex.wait(ex.submit(abs, -1)) == 1
        cm.__exit__(None, None, None)
    times.sort()
    print(f"\nLocalDaskExecutor('processes').start(): median {times[2] * 1000:.1f} ms")
