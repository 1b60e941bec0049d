"""Open executor panels follow the session within a second of a change made outside any cell:
another thread switching or stopping the session, a run ending there, a cluster losing a worker.
A real ipywidgets panel, in-process; no browser, no cell runs."""

from __future__ import annotations

import threading
import time

import pytest

import nbexec
from nbexec.core.run import Run
from nbexec.widgets import panel_status
from nbexec.widgets.panel import ExecutorPanel

pytestmark = pytest.mark.usefixtures("clean_session")

WITHIN = 1.0  # the panel's promise: it follows the session within a second


def _shows(panel: ExecutorPanel, text: str, within: float = WITHIN) -> bool:
    """Poll the panel's status line for ``text`` for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        if text in panel.status.value:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _in_thread(fn, *args, **kwargs) -> None:
    errors: list[BaseException] = []

    def call():
        try:
            fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(60)
    assert not errors, errors


def test_switch_and_stop_from_another_thread_show_within_a_second():
    panel = ExecutorPanel()
    assert "executor: none" in panel.status.value
    _in_thread(nbexec.use, "threads", workers=3)
    assert _shows(panel, "executor: threads --workers 3"), panel.status.value
    assert panel.mode.value == "threads" and panel.workers.value == "3"
    assert panel.magic == "%executor threads --workers 3"
    _in_thread(nbexec.stop)
    assert _shows(panel, "executor: none"), panel.status.value


def test_the_panels_own_stop_keeps_its_form():
    panel = ExecutorPanel()
    panel.mode.value = "threads"
    panel.workers.value = "2"
    assert panel.apply() is nbexec.current()
    panel.workers.value = "4"  # typed after Apply, not applied yet
    panel.stop_button.click()
    assert nbexec.current() is None
    assert _shows(panel, "executor: none"), panel.status.value
    time.sleep(2 * panel_status.REFRESH)  # the refresher ticks without reloading the form
    assert panel.magic == "%executor threads --workers 4"


def test_a_run_ending_in_another_thread_shows_within_a_second():
    nbexec.use("threads", workers=2)
    panel = ExecutorPanel()
    release = threading.Event()
    started = threading.Event()

    def background():
        run = Run(nbexec.current())
        with run:
            run.submit(lambda: (started.set(), release.wait(30)))

    thread = threading.Thread(target=background)
    thread.start()
    try:
        assert started.wait(30)
        assert _shows(panel, "runs going: 1"), panel.status.value
    finally:
        release.set()
        thread.join(30)
    deadline = time.monotonic() + WITHIN
    while "runs going" in panel.status.value and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "runs going" not in panel.status.value, panel.status.value


def test_a_cluster_losing_a_worker_shows_within_a_second(dask_cli_cluster):
    extra = dask_cli_cluster.start_worker(nthreads=1)
    try:
        nbexec.use("dask", address=dask_cli_cluster.address)
        panel = ExecutorPanel()
        assert "workers: 3" in panel.status.value, panel.status.value
        dask_cli_cluster.kill_worker(extra)
        extra = None
        dask_cli_cluster.wait_for_workers(2)
        with dask_cli_cluster.client() as client:
            deadline = time.monotonic() + 30
            while len(client.scheduler_info(n_workers=-1)["workers"]) > 2:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        # the scheduler knows; the panel shows it within a second, without any cell running
        assert _shows(panel, "workers: 2"), panel.status.value
    finally:
        nbexec.stop()
        if extra is not None:
            dask_cli_cluster.kill_worker(extra)


def _refreshers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nbexec-panel-refresh"]


def test_closed_panels_stop_refreshing_and_following():
    panel = ExecutorPanel()
    assert len(_refreshers()) == 1  # one thread refreshes every open panel
    deadline = time.monotonic() + 20 * panel_status.REFRESH
    while panel.refreshes < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert panel.refreshes >= 2
    panel.close()
    count = panel.refreshes
    nbexec.use("threads", workers=2)  # a closed panel no longer follows the session
    time.sleep(3 * panel_status.REFRESH)
    assert panel.refreshes == count
    assert "executor: none" in panel.status.value
    for other in list(panel_status._open):  # earlier tests' panels: ipywidgets keeps them open
        other.close()
    deadline = time.monotonic() + 20 * panel_status.REFRESH
    while _refreshers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _refreshers() == []  # with no panel open, the refresher ends
    again = ExecutorPanel()
    assert len(_refreshers()) == 1
    assert _shows(again, "executor: threads --workers 2")
    again.close()
