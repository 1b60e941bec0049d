"""What a ``%%executor`` cell leaves behind, in a real kernel: one static view, freed results,
no piling widget models (and, on Dask, no keys left on the workers)."""

from __future__ import annotations

import json
import time

import pytest
from kernel_helpers import running_kernel

pytestmark = pytest.mark.slow

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

BIG = """
class Big:
    def __init__(self, n):
        self.data = bytearray(n)
"""


def _executed(cells: list[str]):
    """A notebook of ``cells`` executed in a real kernel, its outputs as nbclient stores them."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return nb


def _json_line(cell) -> dict:
    assert cell.ok, cell.error_text
    return json.loads(cell.streams["stdout"].strip().splitlines()[-1])


def test_cell_leaves_one_static_view_and_blanks_the_live_one():
    with running_kernel(env={"NBEXEC_EXECUTOR": "threads"}) as kernel:
        assert kernel.execute("%load_ext nbexec").ok
        cell = kernel.execute("%%executor\nimport nbexec\nxs = nbexec.map(abs, range(-5, 5))")
        assert cell.ok, cell.error_text
        shown = cell.of_type("display_data", "execute_result")
        updates = cell.of_type("update_display_data")
        # first: the live table, only the widget view (nothing nbval compares), with a display id
        live, static = shown[0]["content"], shown[-1]["content"]
        assert set(live["data"]) == {WIDGET_VIEW}
        display_id = live["transient"]["display_id"]
        # at the end: the live output blanked, the static view displayed
        assert [u["content"]["transient"]["display_id"] for u in updates] == [display_id]
        assert updates[0]["content"]["data"] == {}
        assert len(shown) == 2
        assert set(static["data"]) == {"text/plain", "text/html"}
        assert static["data"]["text/plain"].startswith("nbexec tasks: 10 tasks - 10 success")
        html = static["data"]["text/html"]
        assert "<table" in html and "finished" in html and "abs" in html
        assert "tasks: none" not in html
        # the live model is closed: nothing stays registered
        cell = kernel.execute(
            "import json; from ipywidgets.widgets.widget import _instances; print(json.dumps(len(_instances)))"
        )
        assert _json_line(cell) == 0


@pytest.mark.parametrize("mode", ["local", "threads", "processes"])
def test_dropped_result_is_freed_in_the_kernel(mode):
    with running_kernel() as kernel:
        assert kernel.execute("%load_ext nbexec").ok
        assert kernel.execute(BIG).ok
        cell = kernel.execute(
            f"%%executor {mode}\nimport nbexec\nm = nbexec.task(Big)(100_000_000)"
        )
        assert cell.ok, cell.error_text
        cell = kernel.execute(
            "import gc, json, weakref\n"
            "ref = weakref.ref(m); assert type(m).__name__ == 'Big'\n"
            "del m; gc.collect()\n"
            "print(json.dumps(ref() is None))"
        )
        assert _json_line(cell) is True


def test_dropped_result_is_freed_on_dask_workers(dask_cli_cluster):
    address = dask_cli_cluster.address
    with running_kernel() as kernel:
        assert kernel.execute("%load_ext nbexec").ok
        cell = kernel.execute(
            f"%%executor dask --address {address}\n"
            "import nbexec\n"
            "m = nbexec.task(bytes)(100_000_000)"
        )
        assert cell.ok, cell.error_text
        count = (
            "import gc, json, time, nbexec.session as s\n"
            "client = s.current().client\n"
            "def held():\n"
            "    return sum(len(v) for v in client.run(lambda dask_worker: list(dask_worker.data)).values())\n"
        )
        assert kernel.execute(count).ok
        cell = kernel.execute("print(json.dumps(held()))")
        before = _json_line(cell)
        cell = kernel.execute(
            "del m; gc.collect()\n"
            "deadline = time.monotonic() + 10\n"
            "while held() and time.monotonic() < deadline:\n"
            "    time.sleep(0.1)\n"
            "print(json.dumps(held()))"
        )
        after = _json_line(cell)
        print(f"keys held on the workers: {before} with the result, {after} after del")
        assert before >= 1
        assert after == 0


def test_200_cells_leave_memory_flat_and_no_widget_models():
    with running_kernel(env={"NBEXEC_EXECUTOR": "threads"}) as kernel:
        assert kernel.execute("%load_ext nbexec").ok
        probe = (
            "import gc, json, os\nfrom ipywidgets.widgets.widget import _instances\n"
            "gc.collect()\n"
            "rss = int(open(f'/proc/{os.getpid()}/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
            "print(json.dumps([rss, len(_instances)]))"
        )
        cell_code = (
            "%%executor\nimport nbexec\nys = nbexec.map(lambda x: bytearray(100_000), range(20))"
        )
        for _ in range(20):  # warm up: imports, thread pool, caches
            assert kernel.execute(cell_code).ok
        rss0, models0 = _json_line(kernel.execute(probe))
        peak_models = 0
        for i in range(200):
            cell = kernel.execute(cell_code)
            assert cell.ok, cell.error_text
            if i % 50 == 0:
                peak_models = max(peak_models, _json_line(kernel.execute(probe))[1])
        rss1, models1 = _json_line(kernel.execute(probe))
        growth = (rss1 - rss0) / 1e6
        print(
            f"200 cells: rss {rss0 / 1e6:.1f} -> {rss1 / 1e6:.1f} MB, models {models0} -> {models1}"
        )
        assert models1 <= models0 + 2
        assert peak_models <= models0 + 2
        # each cell's results (2 MB) are replaced by the next: 200 cells held would be 400 MB
        assert growth < 60


def test_interrupted_cell_static_view_says_interrupted(tmp_path):
    """A real interrupt (SIGINT to the kernel) while a task sleeps: the static view's header
    says "interrupted", never "finished", and the counts match what ran."""
    marker = tmp_path / "started"
    with running_kernel() as kernel:
        assert kernel.execute("%load_ext nbexec").ok
        msg_id = kernel.submit(
            "%%executor threads\n"
            "import nbexec, pathlib, time\n"
            "@nbexec.task\n"
            "def nap(s):\n"
            f"    pathlib.Path({str(marker)!r}).touch()\n"
            "    time.sleep(s)\n"
            "quick = nbexec.map(abs, range(3))\n"
            "nap(30)\n"
        )
        deadline = time.monotonic() + 30
        while not marker.exists():  # interrupt only once the task has started
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        kernel.interrupt()
        cell = kernel.collect(msg_id, timeout=30)
    assert cell.ename == "KeyboardInterrupt"
    static = cell.of_type("display_data", "execute_result")[-1]["content"]["data"]
    text, html = static["text/plain"], static["text/html"]
    assert text.splitlines()[0] == "nbexec tasks: 4 tasks - 3 success, 1 cancelled (interrupted)"
    assert "finished" not in text
    assert "nap  1 cancelled" in text and "abs  3 success" in text
    assert ">interrupted</b>" in html and "finished" not in html


def test_executor_wait_leaves_the_static_view_of_a_background_run():
    """A background cell returns at once; ``%executor wait`` then leaves the run's static view as
    any %%executor cell does: its live table blanked, one static view with the table and counts."""
    with running_kernel() as kernel:
        assert kernel.execute("%load_ext nbexec").ok
        cell = kernel.execute(
            "%%executor threads -n 2 --background\n"
            "import nbexec, time\n"
            "naps = nbexec.map(time.sleep, [0.5, 0.5])"
        )
        assert cell.ok, cell.error_text
        # the background cell's own output: the live table, and for static viewers a fixed line
        (own,) = [m["content"]["data"] for m in cell.of_type("display_data", "execute_result")]
        assert set(own) == {WIDGET_VIEW, "text/plain"}
        assert own["text/plain"] == "nbexec: background run - %executor wait shows its table"
        cell = kernel.execute("%executor wait")
        assert cell.ok, cell.error_text
        shown = cell.of_type("display_data", "execute_result")
        updates = cell.of_type("update_display_data")
        assert len(shown) == 2
        live, static = shown[0]["content"], shown[-1]["content"]
        assert set(live["data"]) == {WIDGET_VIEW}
        assert [u["content"]["transient"]["display_id"] for u in updates] == [
            live["transient"]["display_id"]
        ]
        assert updates[0]["content"]["data"] == {}
        assert set(static["data"]) == {"text/plain", "text/html"}
        assert (
            static["data"]["text/plain"] == "nbexec tasks: 2 tasks - 2 success\n  sleep  2 success"
        )
        html = static["data"]["text/html"]
        assert "<table" in html and ">finished</b>" in html and "<code>sleep</code>" in html
        assert "tasks: none" not in html
        assert _json_line(kernel.execute("import json; print(json.dumps(naps))")) == [None, None]


def test_a_cell_that_runs_no_tasks_leaves_nothing_to_see():
    """Executed as nbclient (and so JupyterLab and nbval) store it: an ``%%executor`` cell whose
    code submits no task shows no table and no "tasks: none" line; a cell with tasks shows its
    table. The only trace of the no-task cell is its blanked live output, which renders nothing."""

    cells = [
        "%load_ext nbexec",
        "%%executor threads\nx = 1\nprint('no tasks here')",
        "%%executor threads\nimport nbexec\nys = nbexec.map(abs, range(3))",
    ]
    nb = _executed(cells)
    quiet, busy = nb.cells[1].outputs, nb.cells[2].outputs
    shown = [o for o in quiet if o.output_type != "stream" and o.get("data")]
    assert shown == [], shown
    assert [o.text for o in quiet if o.output_type == "stream"] == ["no tasks here\n"]
    tables = [o.data for o in busy if "text/html" in o.get("data", {})]
    assert len(tables) == 1 and tables[0]["text/plain"].startswith("nbexec tasks: 3 tasks")


@pytest.mark.parametrize("mode", ["threads", "dask -n 2"])
def test_a_dashboard_cell_saves_a_static_task_stream(mode, tmp_path):
    """A ``--dashboard`` cell, executed and stored as nbclient stores it: its live table and
    chart are blanked, and it keeps the static table and the run's task stream as a PNG (no widget
    view whose model a reader without a kernel lacks). Its text/plain is the same in every mode."""
    import base64

    cells = [
        "%load_ext nbexec",
        f"%%executor {mode} --dashboard\nimport nbexec, time\nys = nbexec.map(time.sleep, [0.1] * 6)",
    ]
    nb = _executed(cells)
    outputs = [o for o in nb.cells[1].outputs if o.get("data")]
    assert not any(WIDGET_VIEW in o.data for o in outputs)
    assert [sorted(o.data) for o in outputs] == [
        ["text/html", "text/plain"],
        ["image/png", "text/plain"],
    ]
    assert (
        outputs[1].data["text/plain"] == "nbexec dashboard: task-stream, progress, workers-memory"
    )
    png = base64.b64decode(outputs[1].data["image/png"])
    assert png.startswith(b"\x89PNG") and len(png) < 20_000
    (tmp_path / "stream.png").write_bytes(png)
