"""nbexec's UI in JupyterLab, in headless Chromium: the live table, failures, the panel, the
Dask dashboard iframes and the bokeh task stream.

Each test writes a notebook into the Lab server's root, opens it, waits for the kernel's
``kernel_info_reply`` on the page's websocket, runs it and checks what the page shows.
"""

from __future__ import annotations

import re

import labdriver
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SETUP = "%load_ext nbexec\nimport time\n\nimport nbexec"

# The live table: one anywidget view (its element has the class nbexec-live) while the cell runs.
WIDGET_TABLE = ".jp-OutputArea-output .nbexec-live .nbexec-table"
FALLBACK_TEXT = "tasks: none"
# The static view displayed when the cell ends (rendered text/html, no widget).
SUMMARY = ".nbexec-table"


def _text(locator) -> str:
    """textContent (also of hidden elements, e.g. the live table once the summary replaced it)."""
    return locator.evaluate("e => e.textContent")


def _assert_no_fallback(lab_page: labdriver.LabPage) -> None:
    assert lab_page.page.get_by_text(FALLBACK_TEXT).count() == 0, "the text fallback was shown"


def test_threads_live_table_reaches_final_counts(lab_page, lab):
    name = labdriver.write_notebook(
        lab.root,
        "threads_table.ipynb",
        [
            SETUP,
            "%%executor threads\n"
            "def slow(i):\n"
            "    time.sleep(0.2)\n"
            "    return i * i\n\n"
            "squares = nbexec.map(slow, range(20))",
            "print('sum', sum(squares))",
        ],
    )
    lab_page.open(name)
    lab_page.run_all()
    page = lab_page.page
    table = page.locator(WIDGET_TABLE).first
    # Live: the widget table is on the page while the tasks still run (20 x 0.2 s on a pool).
    expect(table).to_be_visible(timeout=30_000)
    expect(table.locator(".nbexec-header")).to_contain_text("running", timeout=10_000)
    live = _text(table.locator(".nbexec-header"))
    assert re.search(r"\b20 tasks\b", live), live
    lab_page.wait_cells_done()
    # The live widget is gone once done; the static view shows the final counts for good.
    expect(page.locator(WIDGET_TABLE)).to_have_count(0)
    summary = lab_page.outputs(1).locator(SUMMARY).filter(has_text="20 success")
    expect(summary.locator(".nbexec-header")).to_contain_text("finished")
    expect(summary).to_contain_text("20/20")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("slow")
    expect(lab_page.outputs(2)).to_contain_text("sum 2470")
    _assert_no_fallback(lab_page)
    assert lab_page.cell_errors() == {}


def test_failing_task_shows_in_table_with_its_error(lab_page, lab):
    name = labdriver.write_notebook(
        lab.root,
        "failing_task.ipynb",
        [
            SETUP,
            "%%executor threads\n"
            "def ok(i):\n"
            "    return i\n\n"
            "def explode(i):\n"
            "    raise ValueError(f'no good: {i}')\n\n"
            "fine = nbexec.map(ok, range(3))\n"
            "bad = nbexec.submit(explode, 7)",
        ],
    )
    lab_page.open(name)
    lab_page.run_all()
    lab_page.wait_cells_done()
    # The static view left under the cell lists the failure with its error.
    summary = lab_page.outputs(1).locator(SUMMARY).filter(has_text="1 failed")
    expect(summary).to_be_visible()
    expect(summary.locator(".nbexec-header")).to_contain_text("3 success, 1 failed")
    expect(summary.locator(".nbexec-failures")).to_contain_text("explode")
    expect(summary).to_contain_text("no good: 7")
    # The cell itself raises TaskFailed naming the task; nothing else errs.
    errors = lab_page.cell_errors()
    assert list(errors) == [1], errors
    assert "TaskFailed" in errors[1] and "explode" in errors[1], errors[1]
    _assert_no_fallback(lab_page)


def test_panel_mode_chosen_with_the_mouse_applies_to_next_cell(lab_page, lab):
    name = labdriver.write_notebook(
        lab.root,
        "panel.ipynb",
        [
            SETUP + "\n\npanel = nbexec.ExecutorPanel()\npanel",
            "%%executor\n"
            "def where(i):\n"
            "    return i\n\n"
            "r = nbexec.map(where, range(4))\n"
            "print('mode:', nbexec.session.current_mode()[0])",
        ],
    )
    lab_page.open(name)
    lab_page.run_cell(0)
    lab_page.wait_cells_done(upto=1)
    page = lab_page.page
    panel = page.locator(".jp-OutputArea-output .nbexec-panel")
    expect(panel).to_be_visible()
    select = panel.locator(".widget-dropdown select").first
    # ipywidgets' <select> options carry the labels as their values.
    expect(select).to_have_value("local (in the kernel)")
    # With the mouse: open the dropdown, pick "threads (thread pool)".
    select.click()
    select.select_option(label="threads (thread pool)")
    expect(panel.locator(".widget-text input").last).to_have_value(
        re.compile(r"^%executor threads\b")
    )
    panel.get_by_role("button", name="Apply").click()
    status = panel.locator(".nbexec-status")
    expect(status).to_contain_text("threads", timeout=30_000)
    lab_page.run_cell(1)
    lab_page.wait_cells_done()
    expect(lab_page.outputs(1).filter(has_text="mode:")).to_have_text(re.compile("mode: threads"))
    table = lab_page.outputs(1).locator(SUMMARY)
    expect(table.locator(".nbexec-header")).to_contain_text("4 success")
    assert lab_page.cell_errors() == {}


def test_dask_dashboard_iframe_shows_a_plot(lab_page, lab):
    """A ``--dashboard`` cell on Dask leaves the run's task stream as an image (its live iframes
    go with the run); ``nbexec.dashboard()`` shows the cluster's plots live, from 127.0.0.1."""
    name = labdriver.write_notebook(
        lab.root,
        "dask_dashboard.ipynb",
        [
            SETUP,
            # processes=False: the scheduler address is inproc://<external address>/..., the
            # recipe's pitfall; the iframe must still point at 127.0.0.1.
            "%%executor dask -n 1 --no-processes --dashboard\n"
            "def slow(i):\n"
            "    time.sleep(0.05)\n"
            "    return i\n\n"
            "out = nbexec.map(slow, range(40))",
            "print('total', sum(out))",
            "nbexec.dashboard()",
        ],
    )
    lab_page.open(name)
    lab_page.run_all()
    lab_page.wait_cells_done(timeout=120)
    page = lab_page.page
    stream = lab_page.outputs(1).locator("img")
    expect(stream).to_be_visible()
    assert stream.evaluate("img => img.naturalWidth") > 0
    assert lab_page.outputs(1).locator("iframe").count() == 0
    iframes = lab_page.outputs(3).locator("iframe")
    expect(iframes.first).to_be_attached()
    srcs = iframes.evaluate_all("els => els.map(e => e.src)")
    assert srcs and all(re.match(r"^http://127\.0\.0\.1:\d+/individual-", s) for s in srcs), srcs
    iframes.first.scroll_into_view_if_needed()  # the iframes load lazily
    canvas = page.frame_locator(".jp-OutputArea-output iframe").first.locator("canvas").first
    expect(canvas).to_be_visible(timeout=30_000)
    expect(lab_page.outputs(2)).to_contain_text("total 780")
    assert lab_page.cell_errors() == {}


def test_bokeh_task_stream_renders_offline(lab_page, lab):
    name = labdriver.write_notebook(
        lab.root,
        "task_stream.ipynb",
        [
            SETUP,
            "%%executor threads\n"
            "def step(i):\n"
            "    time.sleep(0.02)\n"
            "    return i\n\n"
            "done = nbexec.map(step, range(30))",
            "nbexec.dashboard()",
        ],
    )
    lab_page.open(name)
    lab_page.run_all()
    lab_page.wait_cells_done()
    out = lab_page.outputs(2)
    canvas = out.locator(".bk-Figure canvas").first
    expect(canvas).to_be_visible(timeout=30_000)
    box = canvas.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 50, box
    assert lab_page.external_requests == [], lab_page.external_requests
    assert lab_page.cell_errors() == {}
