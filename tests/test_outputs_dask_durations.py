"""On Dask, a task's duration is measured from its start on its worker, and every row of the
static view has its mean and max, also for quick tasks fed by other tasks (whose "running" event,
sent from the worker through the scheduler, often arrives after their result)."""

from __future__ import annotations

import time

import pytest

import nbexec
from nbexec.widgets import live

pytestmark = pytest.mark.slow


@nbexec.task
def load(i):
    time.sleep(0.05)
    return list(range(i))


@nbexec.task
def clean(xs):
    return [x for x in xs if x % 2]


@nbexec.task
def total(parts):
    return sum(len(p) for p in parts)


def test_rows_of_tasks_fed_by_tasks_have_durations_on_dask():
    run = nbexec.run("dask", workers=2, processes=False)
    view = live.show_run(run)  # outside a kernel: the static view at the end only
    with run:
        parts = [clean(load(i)) for i in range(8)]
        totals = [total(parts[: i + 1]) for i in range(8)]
        assert totals[-1].result() == 12
    view.finish()
    rows = {row.name: row for row in view.snapshot.rows}
    assert set(rows) == {"load", "clean", "total"}
    for row in rows.values():
        assert row.counts["success"] == row.total == 8
        assert row.mean_duration is not None and row.max_duration is not None, row
        assert 0 <= row.mean_duration <= row.max_duration
    # measured from the start on the worker: a load sleeps 0.05 s there
    assert rows["load"].mean_duration >= 0.05


@nbexec.task
def inc(x):
    return x + 1


def test_a_lone_quick_task_reports_its_start_before_its_result():
    """The worker sends the first event after a quiet spell at once, on the stream that later
    carries the task's result: a one-task cell's view needs no wait for the start."""
    ex = nbexec.executor_for("dask", workers=1, processes=False)
    with ex.start():
        for i in range(5):
            time.sleep(2 * 0.1)  # a quiet spell longer than the worker's batching delay
            with nbexec.run(ex) as run:
                assert inc(i).result() == i + 1
                assert run.tracker.wait_started(0.0), f"cell {i}: the start came after the result"
