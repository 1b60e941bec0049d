"""Lost Dask workers on a real CLI cluster: the run finishes with correct results and says so.

A worker process killed with SIGKILL is restarted by its nanny and its tasks rerun; a whole
``dask worker`` (nanny and worker) killed leaves the other worker to finish the run; with every
worker gone the run waits, its status saying why, until a worker joins or the user interrupts.
"""

from __future__ import annotations

import _thread
import itertools
import os
import signal
import sys
import threading
import time

import cloudpickle
import pytest
from reliability_helpers import wait_for

import nbexec
from nbexec.core.render import render_html
from nbexec.core.run import NO_WORKERS

pytestmark = pytest.mark.reliability
# The workers cannot import this module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N_TASKS = 20
_names = itertools.count()


def half_second(i):
    import time

    time.sleep(0.5)
    return i * i


@pytest.fixture
def executor(dask_cli_cluster):
    ex = nbexec.executor_for("dask", address=dask_cli_cluster.address, timeout=10)
    with ex.start():
        yield ex
    _restore(dask_cli_cluster)


def _restore(cluster, n: int = 2) -> None:
    """Back to ``n`` live two-thread workers for the tests that share the cluster."""
    for proc in list(cluster.workers):
        if proc.poll() is not None:
            cluster.kill_worker(proc)
    while len(cluster.workers) < n:
        # A fresh name: the fixture names workers by count, which may repeat a live one's.
        cluster.start_worker("--name", f"reliability-{next(_names)}", wait=False)
    cluster.wait_for_workers(n, timeout=60)
    wait_for(lambda: cluster.n_workers() == n, 30, f"{n} workers")


def _started(run) -> int:
    return sum(1 for f in run.futures if f.state != "pending")


def _html(run) -> str:
    """The live table's HTML (``run.table`` itself is stable for nbval: counts only)."""
    return render_html(run.snapshot(), live=True)


def test_sigkill_worker_process_mid_run(executor, dask_cli_cluster):
    """SIGKILL the worker's own pid (the nanny's child): the nanny restarts it, tasks rerun."""
    pids = dask_cli_cluster.worker_pids
    with nbexec.run(executor) as run:
        futures = nbexec.map(half_second, range(N_TASKS))
        wait_for(lambda: sum(f.state == "success" for f in futures) >= 4, 30, "4 tasks done")
        t_kill = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)
        wait_for(lambda: run.snapshot().info.get("workers_lost"), 10, "the loss in the status")
        t_seen = time.monotonic() - t_kill
    assert [f.result() for f in futures] == [i * i for i in range(N_TASKS)]
    snap = run.snapshot()
    assert snap.info["workers_lost"] >= 1
    assert snap.totals["success"] == N_TASKS
    assert "worker lost" in _html(run) or "workers lost" in _html(run)
    after = wait_for(
        lambda: (lambda p: p if len(p) == 2 else None)(dask_cli_cluster.worker_pids),
        30,
        "the nanny to restart the worker",
    )
    assert pids[0] not in after and pids[1] in after
    print(f"\nworker SIGKILL: loss shown after {t_seen * 1000:.0f} ms; "
          f"{N_TASKS}/{N_TASKS} correct in {snap.elapsed:.1f} s")  # fmt: skip


def test_sigkill_whole_dask_worker_mid_run(executor, dask_cli_cluster):
    """SIGKILL a nanny and its worker (the ``dask worker`` process group): the other one finishes."""
    victim = dask_cli_cluster.workers[0]
    with nbexec.run(executor) as run:
        futures = nbexec.map(half_second, range(N_TASKS))
        wait_for(lambda: sum(f.state == "success" for f in futures) >= 4, 30, "4 tasks done")
        os.killpg(victim.pid, signal.SIGKILL)
        wait_for(lambda: run.snapshot().info.get("workers") == 1, 15, "one worker left")
    assert [f.result() for f in futures] == [i * i for i in range(N_TASKS)]
    snap = run.snapshot()
    assert snap.info["workers_lost"] == 1 and snap.info["workers"] == 1
    assert "1 worker lost" in _html(run)
    victim.wait(10)


def test_every_worker_gone_waits_until_one_joins(executor, dask_cli_cluster):
    """No workers: the run waits (no failure) and says why; a new worker completes it."""
    with nbexec.run(executor) as run:
        futures = nbexec.map(half_second, range(N_TASKS))
        wait_for(lambda: _started(run) >= 2, 30, "tasks to start")
        for proc in list(dask_cli_cluster.workers):
            os.killpg(proc.pid, signal.SIGKILL)
        wait_for(lambda: run.snapshot().info.get("note") == NO_WORKERS, 15, "the no-workers note")
        assert not run.wait(timeout=2.0), "the run ended without workers"
        snap = run.snapshot()
        assert not snap.finished and snap.totals["failed"] == 0
        assert snap.info["workers"] == 0
        assert NO_WORKERS in _html(run)
        t_join = time.monotonic()
        _restore(dask_cli_cluster, n=1)
    took = time.monotonic() - t_join
    assert [f.result() for f in futures] == [i * i for i in range(N_TASKS)]
    snap = run.snapshot()
    assert "note" not in snap.info and snap.info["workers"] == 1
    assert snap.info["workers_lost"] == 2
    print(f"\nall workers gone: waited, then finished {took:.1f} s after a worker was started")


def test_every_worker_gone_then_interrupt(executor, dask_cli_cluster):
    """No workers: the user's interrupt ends the wait within 2 s; the next run works."""
    with pytest.raises(KeyboardInterrupt):
        with nbexec.run(executor) as run:
            futures = nbexec.map(half_second, range(8))
            wait_for(lambda: _started(run) >= 1, 30, "tasks to start")
            for proc in list(dask_cli_cluster.workers):
                os.killpg(proc.pid, signal.SIGKILL)
            wait_for(
                lambda: run.snapshot().info.get("note") == NO_WORKERS, 15, "the no-workers note"
            )
            t0 = time.monotonic()
            threading.Timer(0.3, _thread.interrupt_main).start()
            run.wait()
    latency = time.monotonic() - t0 - 0.3
    assert latency < 2.0, f"KeyboardInterrupt after {latency:.2f} s"
    assert {f.state for f in futures} == {"cancelled"}
    _restore(dask_cli_cluster)
    with nbexec.run(executor):
        again = nbexec.map(half_second, range(4))
    assert [f.result() for f in again] == [0, 1, 4, 9]
    print(f"\nno workers + interrupt: KeyboardInterrupt after {latency * 1000:.0f} ms")
