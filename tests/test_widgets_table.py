"""The live task table and show_run/LiveView, driven from code with real ipywidgets (no browser)."""

from __future__ import annotations

import threading
import time

import pytest

import nbexec
import nbexec.widgets as nw
from nbexec.executors import LocalExecutor
from nbexec.render import render_text
from nbexec.run import Run
from nbexec.tracking import Tracker
from nbexec.widgets import live
from nbexec.widgets.table import RunTable, SummaryView

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class TrackerRun:
    """What the views need of a Run, around a Tracker built directly."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.executor = LocalExecutor()

    def snapshot(self):
        return self.tracker.snapshot()


@pytest.fixture
def kernel(monkeypatch):
    """Pretend to run in a kernel and collect what would be displayed."""
    shown: list = []
    monkeypatch.setattr(nw, "in_kernel", lambda: True)
    monkeypatch.setattr(nw, "display", shown.append)
    return shown


def _finished_run() -> Run:
    run = Run(LocalExecutor())

    def bad(x):
        raise ValueError(f"boom {x}")

    with pytest.raises(nbexec.TaskFailed), run:
        for i in range(6):
            run.submit(lambda x: x, i)
        run.submit(bad, 1)
    return run


def _tracker(n: int, names=("a", "b", "c")) -> Tracker:
    tracker = Tracker()
    for i in range(n):
        tid = tracker.add(names[i % len(names)], f"k{i}")
        tracker.running(tid, where=f"w{i % 4}")
        if i % 4 == 0:
            tracker.finish(tid, "failed", "ValueError: x", "Traceback ...\nValueError: x")
        elif i % 4 != 1:
            tracker.finish(tid, "success")
    return tracker


def test_table_rows_counts_failures_slowest():
    run = _finished_run()
    table = RunTable(run)
    assert list(table.rows) == ["lambda", "bad"]
    assert table.rows["lambda"].counts.value == "6 success"
    assert table.rows["lambda"].done.value == "6/6 done"
    assert table.rows["bad"].counts.value == "1 failed"
    assert "width:100.00%" in table.rows["bad"].bar.value
    assert "<details>" in table.failures.value and "ValueError: boom 1" in table.failures.value
    assert "Traceback" in table.failures.value  # folded inside <details>
    assert "Slowest" in table.slowest.value
    assert "7 tasks" in table.header.value and "finished" in table.header.value
    assert repr(table) == render_text(run.snapshot())


def test_table_text_plain_is_nbexec_text(kernel):
    run = _finished_run()
    table = RunTable(run)
    bundle = table._repr_mimebundle_()
    assert set(bundle) == {"text/plain", WIDGET_VIEW}
    assert bundle["text/plain"] == render_text(run.snapshot())
    table.plain_text = "nbexec tasks: none"
    assert table._repr_mimebundle_()["text/plain"] == "nbexec tasks: none"
    summary = SummaryView.from_snapshot(run.snapshot())
    bundle = summary._repr_mimebundle_()
    assert set(bundle) == {"text/plain", WIDGET_VIEW}
    assert bundle["text/plain"] == render_text(run.snapshot())
    assert "<table>" in summary.value


def test_table_outside_kernel_gives_text_and_html():
    bundle = RunTable(_finished_run())._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}


def test_many_names_are_capped():
    tracker = _tracker(200, names=[f"name{i}" for i in range(60)])
    table = RunTable(TrackerRun(tracker))
    assert len(table.rows_box.children) == 50
    assert table.more.value.startswith("... and 10 more task names")


def _refresh_cost(tracker: Tracker) -> float:
    table = RunTable(TrackerRun(tracker))
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(40):
            tracker._version += 1  # a new snapshot each time, as during a run
            table.refresh()
        best = min(best, (time.perf_counter() - t0) / 40)
    return best


def test_refresh_cost_does_not_grow_with_tasks():
    small = _refresh_cost(_tracker(100))
    large = _refresh_cost(_tracker(100_000))
    print(f"refresh: 100 tasks {small * 1e3:.3f} ms, 100,000 tasks {large * 1e3:.3f} ms")
    assert large < 3 * small + 0.5e-3


def test_show_run_first_output_is_constant_across_modes(kernel):
    texts = []
    for executor in (LocalExecutor(), nbexec.LocalDaskExecutor("threads", num_workers=2)):
        run = Run(executor)
        view = live.show_run(run)
        texts.append(kernel[-1]._repr_mimebundle_()["text/plain"])
        with run:
            run.map(lambda x: x + 1, range(5))
        view.finish()
    assert texts == ["nbexec tasks: none", "nbexec tasks: none"]


def test_show_run_finish_displays_one_summary(kernel):
    run = Run(LocalExecutor())
    view = live.show_run(run)
    assert [type(x) for x in kernel] == [RunTable]
    assert live.last_run() is run
    with run:
        run.map(lambda x: x * 2, range(10))
    view.finish()
    view.finish()  # idempotent
    assert [type(x) for x in kernel] == [RunTable, SummaryView]
    bundle = kernel[-1]._repr_mimebundle_()
    assert set(bundle) == {"text/plain", WIDGET_VIEW}
    assert bundle["text/plain"] == render_text(run.snapshot())
    assert view.table.rows[
        "<lambda>" if "<lambda>" in view.table.rows else "lambda"
    ].done.value == ("10/10 done")
    assert view._thread is not None and not view._thread.is_alive()
    assert kernel[0]._repr_mimebundle_()["text/plain"] == "nbexec tasks: none"


@pytest.mark.slow
def test_updates_are_bounded_while_100k_tasks_churn(kernel):
    tracker = Tracker()
    run = TrackerRun(tracker)
    view = live.show_run(run)
    stop = threading.Event()

    def churn():
        for i in range(100_000):
            tid = tracker.add(("a", "b", "c")[i % 3], "")
            tracker.running(tid, where="here")
            tracker.finish(tid, "success")
            if stop.is_set():
                break

    worker = threading.Thread(target=churn)
    t0 = time.monotonic()
    worker.start()
    worker.join(60)
    duration = time.monotonic() - t0
    time.sleep(0.6)  # the updater catches up
    settled = view.refreshes
    time.sleep(0.8)  # no changes: no refreshes
    assert view.refreshes == settled
    assert 1 <= settled <= duration / live.INTERVAL + 3
    print(f"{len(tracker)} tasks in {duration:.2f} s: {settled} refreshes")
    assert view.table.refreshes <= settled + 1  # + the first drawing
    assert (
        view.table.rows["a"].done.value
        == f"{tracker.snapshot().rows[0].total}/{tracker.snapshot().rows[0].total} done"
    )
    view.finish()
    assert kernel[-1].text == render_text(tracker.snapshot())


def test_updater_stops_with_the_view(kernel):
    run = TrackerRun(Tracker())
    view = live.show_run(run)
    thread = view._thread
    view.finish()
    assert not thread.is_alive()


def test_no_table_shows_nothing(kernel):
    run = Run(LocalExecutor())
    view = live.show_run(run, table=False)
    with run:
        run.submit(abs, -3)
    view.finish()
    assert kernel == [] and view.table is None and view._thread is None


def test_header_says_when_workers_were_lost_or_none_are_left():
    from nbexec.tracking import Tracker
    from nbexec.widgets.table import header_html

    tracker = Tracker()
    tracker.add("t", "k")
    tracker.set_info(workers=0, workers_lost=2, note="no workers: tasks wait until a worker joins")
    html = header_html(tracker.snapshot())
    assert "2 workers lost" in html and "no workers: tasks wait until a worker joins" in html
