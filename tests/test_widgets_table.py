"""The live task table and show_run/LiveView, driven from code with real ipywidgets (no browser)."""

from __future__ import annotations

import threading
import time

import pytest
from ipywidgets.widgets.widget import _instances

import nbexec
import nbexec.widgets as nw
from nbexec import session
from nbexec.core.render import render_html, render_text
from nbexec.core.run import Run
from nbexec.core.tracking import Tracker
from nbexec.executors import LocalExecutor
from nbexec.widgets import live
from nbexec.widgets.table import RunTable

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class TrackerRun:
    """What the views need of a Run, around a Tracker built directly."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.executor = LocalExecutor()

    def snapshot(self):
        return self.tracker.snapshot()


class Shown(list):
    """What would be displayed: objects, or ``(bundle, display_id)`` for raw displays; and the
    display updates as ``(bundle, display_id)``."""

    def __init__(self):
        super().__init__()
        self.updates = []


class Handle:
    def __init__(self, shown, n):
        self.shown, self.display_id = shown, n

    def update(self, obj, raw=False):
        self.shown.updates.append((obj, self.display_id))


@pytest.fixture
def kernel(monkeypatch):
    """Pretend to run in a kernel and collect what would be displayed."""
    shown = Shown()

    def display(obj, raw=False, display_id=None):
        shown.append(obj)
        return Handle(shown, len(shown)) if display_id else None

    monkeypatch.setattr(nw, "in_kernel", lambda: True)
    monkeypatch.setattr(nw, "display", display)
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
    html = table.html
    assert html == render_html(run.snapshot(), live=True)
    assert "<code>lambda</code>" in html and "<code>bad</code>" in html
    assert "6/6" in html and "6 success" in html and "1 failed" in html
    assert "width:100.00%" in html
    assert "<details>" in html and "ValueError: boom 1" in html and "Traceback" in html
    assert "slowest tasks" in html
    assert "7 tasks" in html and "finished" in html
    assert repr(table) == render_text(run.snapshot())


def test_table_is_one_model_holding_its_run_weakly(kernel):
    import gc

    before = set(_instances)
    run = Run(LocalExecutor())
    with run:
        run.map(abs, range(5))
    table = RunTable(run)
    assert len(set(_instances) - before) <= 2  # the table and its layout
    bundle = table._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert set(bundle) == {"text/plain", WIDGET_VIEW}
    assert bundle["text/plain"] == render_text(run.snapshot())
    shown = table.html
    del run
    gc.collect()
    assert table.run is None
    table.refresh()  # the snapshot it kept
    assert table.html == shown
    table.close_all()
    assert set(_instances) == before


def test_table_outside_kernel_gives_text_and_html():
    bundle = RunTable(_finished_run())._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}


def test_many_names_are_capped():
    tracker = _tracker(200, names=[f"name{i}" for i in range(60)])
    table = RunTable(TrackerRun(tracker))
    assert table.html.count("<tr>") == 1 + 50 + 1  # head, 50 names, the "more" line
    assert "... and 10 more task names" in table.html


def test_show_run_live_output_is_only_the_widget_view(kernel):
    for executor in (LocalExecutor(), nbexec.LocalDaskExecutor("threads", num_workers=2)):
        run = Run(executor)
        view = live.show_run(run)
        assert set(kernel[-1]) == {WIDGET_VIEW}  # nothing nbval compares
        with run:
            run.map(lambda x: x + 1, range(5))
        view.finish()


def test_show_run_finish_blanks_the_live_output_and_displays_one_static_view(kernel):
    import gc
    import weakref

    before = set(_instances)
    run = Run(LocalExecutor())
    view = live.show_run(run)
    assert len(kernel) == 1 and session.last_run() is run
    with run:
        run.map(lambda x: x * 2, range(10))
    view.finish()
    view.finish()  # idempotent
    assert kernel.updates == [({}, 1)]
    assert len(kernel) == 2
    bundle = kernel[-1]._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert bundle["text/plain"] == render_text(run.snapshot())
    assert bundle["text/html"] == render_html(run.snapshot())
    assert "10/10" in bundle["text/html"] and "finished" in bundle["text/html"]
    assert view._thread is not None and not view._thread.is_alive()
    assert set(_instances) == before  # the live model is closed
    # the view keeps a snapshot, not the run
    ref = weakref.ref(run)
    del run
    gc.collect()
    assert ref() is None and view.run is None
    assert session.last_run().summary() == {"lambda": {"success": 10}}


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
    assert view.table.refreshes <= settled + view.ticks + 1  # + the first drawing
    total = tracker.snapshot().rows[0].total
    assert f"{total}/{total}" in view.table.html
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
    tracker = Tracker()
    tracker.add("t", "k")
    tracker.set_info(workers=0, workers_lost=2, note="no workers: tasks wait until a worker joins")
    html = render_html(tracker.snapshot(), live=True)
    assert "2 workers lost" in html and "no workers: tasks wait until a worker joins" in html
