"""The live table's "cancel run" button, driven from code as the browser module would drive it."""

from __future__ import annotations

import threading
import time

from nbexec.config.modes import executor_for
from nbexec.core.run import Run
from nbexec.widgets.table import ESM, RunTable


def _click_cancel(table: RunTable) -> None:
    """What ipywidgets does with the ES module's ``model.send({event: "cancel"})``."""
    table._handle_msg(
        {"content": {"data": {"method": "custom", "content": {"event": "cancel"}}}, "buffers": []}
    )


def test_the_cancel_button_cancels_the_runs_open_tasks_and_hides_when_it_ended():
    assert 'model.send({ event: "cancel" })' in ESM and 'model.get("running")' in ESM
    gate = threading.Event()
    ex = executor_for("threads", workers=1)
    with ex.start():
        with Run(ex) as run:
            busy = run.submit(gate.wait, 30)  # holds the only thread
            pending = [run.submit(time.sleep, 0) for _ in range(3)]
            table = RunTable(run)
            assert table.running
            t0 = time.monotonic()
            _click_cancel(table)
        ended = time.monotonic() - t0
        gate.set()
        assert [f.state for f in pending] == ["cancelled"] * 3
        assert busy.state == "cancelled" and table.cancels == 4
        assert run.summary() == {"wait": {"cancelled": 1}, "sleep": {"cancelled": 3}}
        print(f"\nthreads: cancel button -> run ended after {ended:.3f} s")
        table.refresh()
        assert not table.running  # the button hides
        _click_cancel(table)  # a late click on an ended run does nothing
        assert table.cancels == 4
        table.close_all()


def test_other_messages_and_a_freed_run_are_ignored():
    ex = executor_for("sync")
    with ex.start():
        with Run(ex) as run:
            run.submit(abs, -1)
            table = RunTable(run)
    table._handle_msg(
        {"content": {"data": {"method": "custom", "content": {"event": "other"}}}, "buffers": []}
    )
    _click_cancel(table)
    assert table.cancels == 0 and not table.running
    table.close_all()
