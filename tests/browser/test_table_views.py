"""The task table as readers see it: live in JupyterLab, then the static view it leaves behind, in
JupyterLab and Notebook 7, at 1,600 px and 900 px; and stored notebooks open unmodified.

Screenshots of the table go to ``tests/_artifacts/table-<app>-<width>.png`` (look at them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import labdriver
import nbformat
import pytest
from nbclient import NotebookClient
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SETUP = "%load_ext nbexec\nimport time\n\nimport nbexec"
WORK = (
    "%%executor threads -n 4\n"
    "@nbexec.task\n"
    "def load_partition_from_storage(i):\n"
    "    time.sleep(0.3 * (i % 4))\n"
    "    return list(range(i))\n\n"
    "@nbexec.task\n"
    "def clean(rows):\n"
    "    return sorted(rows)\n\n"
    "def risky(x):\n"
    "    if x == 13:\n"
    "        raise ValueError('bad row 13')\n"
    "    return x\n\n"
    "parts = [clean(load_partition_from_storage(i)) for i in range(24)]\n"
    "checked = nbexec.map(risky, range(20))"
)
COLUMNS = ["task", "progress", "done", "states", "mean", "max"]
STATIC = ".jp-OutputArea-output .nbexec-table"
LIVE = ".jp-OutputArea-output .nbexec-live"


def _check_static_table(page, cell_output, tag: str) -> None:
    """One static table, aligned columns, nothing clipped, failures listed; screenshot it."""
    table = cell_output.locator(".nbexec-table")
    expect(table).to_have_count(1)
    expect(table).to_be_visible()
    assert table.locator("xpath=ancestor::*[contains(@class,'nbexec-live')]").count() == 0
    header = table.locator(".nbexec-header")
    expect(header).to_contain_text("finished")
    expect(header).to_contain_text("68 tasks")
    heads = table.locator("thead th").all_text_contents()
    assert heads == COLUMNS, heads
    expect(table).to_contain_text("24/24")
    expect(table).to_contain_text("bad row 13")
    expect(table.locator(".nbexec-legend")).to_contain_text("cancelled")
    # wrapping, not clipping: the table fits its output area without a scroll bar
    fits = table.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    assert fits, table.evaluate("e => [e.scrollWidth, e.clientWidth]")
    labdriver.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    table.screenshot(path=str(labdriver.ARTIFACTS / f"table-{tag}.png"))


@pytest.mark.parametrize("width", [1600, 900])
def test_live_then_static_table_in_lab(lab_page, lab, width):
    name = labdriver.write_notebook(lab.root, f"table_{width}.ipynb", [SETUP, WORK])
    page = lab_page.page
    page.set_viewport_size({"width": width, "height": 1000})
    lab_page.open(name)
    lab_page.run_all()
    live = page.locator(LIVE)
    expect(live.locator(".nbexec-header")).to_contain_text("running", timeout=30_000)
    heads = live.locator("thead th").all_text_contents()
    assert heads == COLUMNS, heads  # the same columns live and static
    lab_page.wait_cells_done()
    expect(page.locator(LIVE)).to_have_count(0)  # the live model is gone ...
    _check_static_table(page, lab_page.outputs(1), f"lab-{width}")  # ... for the static view
    assert list(lab_page.cell_errors()) == [1]  # the cell raises TaskFailed (risky-13)


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    server = labdriver.start_lab(tmp_path_factory.mktemp("nb7"), app="notebook")
    try:
        yield server
    finally:
        server.stop()


def _executed(root: Path, name: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(labdriver.KERNELSPEC)
    nb.cells = [nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(WORK)]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    nbformat.write(nb, root / name)
    return name


@pytest.mark.parametrize("width", [1600, 900])
def test_static_table_in_notebook7(browser, notebook7, width):
    name = _executed(notebook7.root, f"stored_{width}.ipynb")
    context = browser.new_context(viewport={"width": width, "height": 1000})
    context.set_default_timeout(30_000)
    try:
        page = context.new_page()
        page.goto(notebook7.lab_url(name), wait_until="domcontentloaded")
        outputs = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
        expect(outputs.locator(".nbexec-table")).to_be_visible(timeout=60_000)
        expect(outputs.filter(has_text="tasks: none")).to_have_count(0)
        _check_static_table(page, outputs, f"notebook7-{width}")
    finally:
        context.close()
        notebook7.shutdown_kernels()


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("0[1-3]*.ipynb")), ids=str)
def test_stored_notebook_opens_unmodified(lab_page, lab, notebook):
    dest = lab.root / "stored"
    dest.mkdir(exist_ok=True)
    shutil.copy(notebook, dest / notebook.name)
    lab_page.open(f"stored/{notebook.name}")
    page = lab_page.page
    page.wait_for_timeout(2000)  # widget state restored, kernel info merged into the metadata
    dirty = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty")
    assert dirty is False
    expect(page.locator(STATIC).first).to_be_visible()
    expect(page.get_by_text("nbexec tasks: none")).to_have_count(0)
