"""nbexec.dashboard(): dashboard links (plain, templated, JupyterHub), iframes, the task stream."""

from __future__ import annotations

import base64
import types
import urllib.request

import dask
import pytest

import nbexec
import nbexec.widgets as nw
from nbexec import session
from nbexec.core.render import render_text
from nbexec.core.run import Run
from nbexec.core.tracking import Tracker
from nbexec.testing import sanitize
from nbexec.widgets import live
from nbexec.widgets.dashboard import DEFAULT_PLOTS, dashboard, dashboard_link, plot_urls
from nbexec.widgets.taskstream import LIMIT, TaskStream

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
TEXT = "nbexec dashboard: task-stream, progress, workers-memory"


class FakeClient:
    def __init__(self, address: str = "tcp://127.0.0.1:8786", port: int | None = 8787):
        self.scheduler = types.SimpleNamespace(address=address)
        self.cluster = None
        self._port = port

    def scheduler_info(self, n_workers: int = -1) -> dict:
        return {"services": {"dashboard": self._port} if self._port else {}}


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    nbexec.stop()
    session.set_last_run(None)
    yield
    nbexec.stop()
    session.set_last_run(None)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """JupyterHub's prefix and an importable jupyter_server_proxy."""
    (tmp_path / "jupyter_server_proxy").mkdir()
    (tmp_path / "jupyter_server_proxy" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")


def test_plain_link():
    assert dashboard_link(FakeClient()) == "http://127.0.0.1:8787/status"
    assert dashboard_link(FakeClient("tcp://10.0.0.5:8786")) == "http://10.0.0.5:8787/status"
    assert dashboard_link(FakeClient("tcp://[::1]:8786")) == "http://[::1]:8787/status"
    assert dashboard_link(FakeClient(port=None)) is None


def test_templated_link(monkeypatch):
    with dask.config.set(
        {"distributed.dashboard.link": "https://dask.example/{host}/{port}/status"}
    ):
        assert dashboard_link(FakeClient()) == "https://dask.example/127.0.0.1/8787/status"
    monkeypatch.setenv("MY_PREFIX", "/lab/")
    with dask.config.set({"distributed.dashboard.link": "{MY_PREFIX}proxy/{port}/status"}):
        assert dashboard_link(FakeClient()) == "/lab/proxy/8787/status"


def test_template_naming_a_missing_variable_falls_back(monkeypatch):
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    with dask.config.set({"distributed.dashboard.link": "{NO_SUCH_VARIABLE}proxy/{port}/status"}):
        assert dashboard_link(FakeClient()) == "http://127.0.0.1:8787/status"


def test_jupyterhub_link(hub):
    assert dashboard_link(FakeClient()) == "/user/alice/proxy/8787/status"
    remote = dashboard_link(FakeClient("tcp://10.0.0.5:8786"))
    assert remote == "/user/alice/proxy/10.0.0.5:8787/status"
    assert plot_urls("/user/alice/proxy/8787/status", ["task-stream"]) == [
        "/user/alice/proxy/8787/individual-task-stream"
    ]


def test_users_template_wins_over_jupyterhub(hub):
    with dask.config.set({"distributed.dashboard.link": "http://mine:{port}/status"}):
        assert dashboard_link(FakeClient()) == "http://mine:8787/status"


def test_jupyterhub_without_server_proxy_uses_plain_link(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    monkeypatch.setitem(__import__("sys").modules, "jupyter_server_proxy", None)
    assert dashboard_link(FakeClient()) == "http://127.0.0.1:8787/status"


def test_plot_urls_and_names():
    urls = plot_urls("http://h:1/status", ["task-stream", "/individual-progress", "nbytes"])
    assert urls == ["http://h:1/individual-task-stream", "http://h:1/individual-progress",
                    "http://h:1/individual-nbytes"]  # fmt: skip
    with pytest.raises(ValueError, match="plot names"):
        plot_urls("http://h:1/status", ["../etc"])


def test_no_run_yet():
    view = dashboard()
    assert view.text == TEXT and view.chart is None
    assert "no run yet" in view._repr_mimebundle_()["text/html"]


def test_task_stream_for_a_local_run(monkeypatch):
    run = Run(nbexec.LocalDaskExecutor("threads", num_workers=2))
    with run:
        run.map(lambda x: x, range(20))
        run.map(abs, range(-5, 5))
    view = dashboard(run=run)
    assert view.text == TEXT
    assert view.urls == [] and view.chart is not None
    assert len(view.chart.data["start"]) == 30
    assert set(view.chart.data["name"]) == {"lambda", "abs"}
    assert all(lane.startswith("pid ") for lane in view.chart.lanes)
    assert view.chart.color("lambda") != view.chart.color("abs")
    from jupyter_bokeh import BokehModel

    assert isinstance(view.widget, BokehModel)
    assert "<svg" in view.html() and view.html().count("<rect") == 30
    monkeypatch.setattr(nw, "in_kernel", lambda: True)
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", WIDGET_VIEW}
    assert bundle["text/plain"] == TEXT


def test_task_stream_draws_a_bounded_number_of_bars():
    tracker = Tracker()
    for i in range(3 * LIMIT):
        tid = tracker.add(("a", "b", "c")[i % 3], "")
        tracker.running(tid, where=f"thread {i % 4}")
        tracker.finish(tid, "success")
    chart = TaskStream(tracker)
    chart.refresh()
    assert len(chart.source.data["start"]) == LIMIT
    assert chart.figure.title.text == f"nbexec task stream (last {LIMIT} of {3 * LIMIT} tasks)"
    assert chart.lanes == [f"thread {i}" for i in range(4)]


def test_show_run_with_dashboard_for_local_mode(monkeypatch):
    shown = _collect(monkeypatch)
    run = Run(nbexec.LocalExecutor())
    view = live.show_run(run, dashboard=True)
    with run:
        run.map(lambda x: x, range(7))
    view.finish()
    # the live table and chart (widget views only), blanked at the end; then the static views
    assert [set(x) for x in shown[:2]] == [{WIDGET_VIEW}] * 2
    static = [x._repr_mimebundle_() for x in shown[2:]]
    assert [b["text/plain"] for b in static] == [render_text(run.snapshot()), TEXT]
    assert set(static[1]) == {"text/plain", "image/png"}
    assert base64.b64decode(static[1]["image/png"]).startswith(b"\x89PNG")
    assert len(view.dashboard.chart.source.data["start"]) == 7
    assert view.dashboard.widget is None  # the chart's models are closed


def _collect(monkeypatch) -> list:
    """Pretend to be in a kernel; what is displayed is appended to the returned list."""
    shown: list = []
    monkeypatch.setattr(nw, "in_kernel", lambda: True)
    monkeypatch.setattr(nw, "display", lambda obj, **kwargs: shown.append(obj))
    return shown


@pytest.fixture
def local_cluster():
    executor = nbexec.use("dask", workers=1, processes=False)
    yield executor
    nbexec.stop()


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def test_dask_iframes_answer(local_cluster, monkeypatch):
    with nbexec.run() as run:
        run.map(lambda x: x + 1, range(4))
    view = dashboard(run=run)
    assert view.text == TEXT
    assert view.link.startswith("http://127.0.0.1:") and view.link.endswith("/status")
    assert [u.rsplit("/", 1)[1] for u in view.urls] == [f"individual-{p}" for p in DEFAULT_PLOTS]
    for url in [view.link, *view.urls]:
        assert _get(url) == 200, url
    html = view.html()
    assert html.count("<iframe") == 3 and "open the full dashboard" in html
    assert dashboard().urls == view.urls  # the session's cluster, without naming the run
    monkeypatch.setattr(nw, "in_kernel", lambda: True)
    assert set(view._repr_mimebundle_()) == {"text/plain", WIDGET_VIEW}


def test_dask_table_gets_workers_and_link(local_cluster, monkeypatch):
    shown = _collect(monkeypatch)
    run = nbexec.run()
    view = live.show_run(run, dashboard=True)
    table = view.table
    with run:
        run.map(lambda x: x, range(3))
    table.refresh()
    live_html = table.html
    view.finish()
    assert run.tracker.info["dashboard_link"].startswith("http://127.0.0.1:")
    assert run.tracker.info["workers"] == 1
    assert "1 worker" in live_html and "dashboard</a>" in live_html
    assert [set(x) for x in shown[:2]] == [{WIDGET_VIEW}] * 2
    texts = [x._repr_mimebundle_()["text/plain"] for x in shown[2:]]
    assert texts == [render_text(run.snapshot()), TEXT]  # the same as in local mode
    assert "image/png" in shown[3]._repr_mimebundle_()


CELLS = [
    "import nbexec\nfrom nbexec.widgets.live import show_run",
    "run = nbexec.run('dask', workers=1, processes=False)\n"
    "view = show_run(run, dashboard=True)\n"
    "with run:\n    futures = run.map(lambda x: x + 1, range(20))\n"
    "view.finish()",
    "nbexec.ExecutorPanel()",
    "nbexec.dashboard()",
    "nbexec.stop()",
]


def _execute(monkeypatch, env: dict) -> list:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    with monkeypatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value)
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = []
    for cell in nb.cells:
        for out in cell.outputs:
            assert out.output_type in ("display_data", "execute_result"), out
            data = dict(out.get("data", {}))
            if not data:
                continue  # the live table, blanked when its run finished
            assert set(data) <= {"text/plain", "text/html", "image/png", WIDGET_VIEW}
            data.pop(WIDGET_VIEW, None)  # what nbval compares is what is left
            data.pop("image/png", None)
            if not data:
                continue  # a live view (nbval skips widget views)
            assert "text/plain" in data
            outputs.append((out.output_type, {k: sanitize(v) for k, v in data.items()}))
    return outputs


@pytest.mark.slow
def test_kernel_outputs_compare_equal_under_override(monkeypatch):
    """In a real kernel: widget views plus nbexec's text only, the same with NBEXEC_EXECUTOR=local."""
    dask_outputs = _execute(monkeypatch, {})
    local_outputs = _execute(monkeypatch, {session.ENV_VAR: "local"})
    assert dask_outputs == local_outputs
    assert [data["text/plain"] for _, data in dask_outputs] == [
        "nbexec tasks: 20 tasks - 20 success\n  lambda  20 success",
        TEXT,  # the run's task stream, saved as an image
        "nbexec executor panel",
        TEXT,
    ]


def test_task_stream_draws_during_a_threads_run_and_is_shown_from_the_start(monkeypatch, tmp_path):
    """The chart gains bars while tasks still run (not only at the end), and it is displayed
    when the run starts, under the table, so nothing is inserted above later."""
    import threading
    import time

    shown = _collect(monkeypatch)
    gate = threading.Event()
    executor = nbexec.LocalDaskExecutor("threads", num_workers=2)
    with executor.start():
        run = Run(executor)
        view = live.show_run(run, dashboard=True)
        assert [set(x) for x in shown] == [{WIDGET_VIEW}] * 2  # the table, then the chart
        with run:
            run.map(lambda x: x, range(4))
            run.submit(gate.wait, 10)
            deadline = time.monotonic() + 10
            while (
                len(view.dashboard.chart.source.data["start"]) < 4 and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            bars_mid_run = len(view.dashboard.chart.source.data["start"])
            gate.set()
        view.finish()
    assert bars_mid_run >= 4
    assert len(shown) == 4  # the table, the chart (from the start), their static views


def test_a_finished_dashboard_closes_its_own_models_only(monkeypatch):
    """At the end of a --dashboard run the chart's models (chart, loader box, loader, their
    layouts) are closed; other widgets of the kernel stay open (no Widget.close_all)."""
    import ipywidgets
    from ipywidgets.widgets.widget import _instances

    _collect(monkeypatch)
    other = ipywidgets.IntSlider()
    before = set(_instances)
    run = Run(nbexec.LocalExecutor())
    view = live.show_run(run, dashboard=True)
    with run:
        run.map(lambda x: x, range(3))
    view.finish()
    assert other.comm is not None and other.model_id in _instances  # still open
    assert set(_instances) <= before, set(_instances) - before
    other.close()


def test_task_stream_png_gives_overlapping_tasks_rows_of_their_own():
    """Two tasks at once on one Dask worker (one lane) are drawn one above the other, not over
    each other; tasks that follow each other share a row."""
    import struct

    from nbexec.widgets._streampng import _pack, stream_png

    data = {
        "start": [0.0, 0.1, 1.0, 0.0],
        "end": [0.9, 0.8, 1.5, 1.5],
        "lane": ["w1", "w1", "w1", "w2"],
        "name": ["a", "a", "b", "a"],
        "state": ["success"] * 4,
    }
    rows, bounds = _pack(data["start"], data["end"], data["lane"], ["w1", "w2"])
    assert rows == [0, 1, 0, 2] and bounds == [0, 2, 3]
    png = stream_png(data, ["w1", "w2"], lambda name: "#1f77b4")
    width, height = struct.unpack(">II", png[16:24])
    assert png.startswith(b"\x89PNG") and (width, height) == (800, 4 + 3 * 14 + 22)
