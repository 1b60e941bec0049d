""" "running" on Dask is what the workers report: two tasks asleep on a 2-worker LocalCluster
show as 2 running in the live view (snapshot and its text), each on its own worker, then success."""

from __future__ import annotations

import time

import pytest

from nbexec.core.render import render_html, render_text
from nbexec.core.run import Run
from nbexec.executors.dask import DaskExecutor

pytestmark = pytest.mark.slow


def test_two_sleeping_tasks_show_as_two_running_on_their_workers():
    executor = DaskExecutor(
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 1,
            "host": "127.0.0.1",
            "dashboard_address": "127.0.0.1:0",
        }
    )
    with executor.start(), Run(executor) as run:
        futures = [run.submit(time.sleep, 2) for _ in range(2)]
        deadline = time.monotonic() + 30
        snap = run.snapshot()
        # sample what the live view renders from while the tasks sleep
        while snap.totals["running"] < 2:
            assert not any(f.done() for f in futures), f"finished without showing 2 running: {snap}"
            assert time.monotonic() < deadline, f"never 2 running: {snap.totals}"
            time.sleep(0.02)
            snap = run.snapshot()
        assert not any(f.done() for f in futures)  # sampled while they sleep
        assert snap.totals["running"] == 2 and snap.totals["pending"] == 0
        assert render_text(snap) == "nbexec tasks: 2 tasks - 2 running\n  sleep  2 running"
        assert ">running</b>" in render_html(snap)
        # the workers said where each one runs: one task on each of the two workers
        assert sorted(snap.workers.values()) == [1, 1]
        assert all(w.startswith("tcp://127.0.0.1:") for w in snap.workers)
        run.wait()
    done = run.snapshot()
    assert done.totals["success"] == 2 and done.totals["running"] == 0
    assert render_text(done) == "nbexec tasks: 2 tasks - 2 success\n  sleep  2 success"
