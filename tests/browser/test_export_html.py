"""``jupyter nbconvert --to html`` of a notebook holding nbexec's static tables, read in Chromium:
the table lines up with the cell's other outputs (text outputs are indented by 1ch) and long task
names wrap inside the output column instead of being clipped or scrolled, at 500 and 1,200 px.
Screenshots: ``tests/_artifacts/export-<width>.png``."""

from __future__ import annotations

import subprocess
import sys

import labdriver
import nbformat
import pytest

from nbexec.core.render import render_html, render_text
from nbexec.core.tracking import Tracker

pytestmark = pytest.mark.browser

LONG = "a_really_long_task_name_that_goes_on_and_on_for_quite_a_while_longer_than_the_column"
UNBROKEN = "averyveryveryverylongnamewithoutanybreakopportunityatallforwrappingxxxxxxxxxxxx"

MEASURE = """() => Array.from(document.querySelectorAll('.nbexec-table')).map(t => {
  const cell = t.closest('.jp-Cell');
  const column = t.closest('.jp-OutputArea-output').getBoundingClientRect();
  const text = cell.querySelector('.jp-RenderedText pre');
  const range = document.createRange();
  range.selectNodeContents(text.firstChild);
  const names = Array.from(t.querySelectorAll('tbody td:first-child')).map(td => {
    const r = td.getBoundingClientRect();
    return {height: r.height, right: r.right};
  });
  const box = t.getBoundingClientRect();
  const table = t.querySelector('table').getBoundingClientRect();
  return {
    left: table.left, right: Math.max(box.right, table.right), columnRight: column.right,
    textLeft: range.getBoundingClientRect().left, scroll: t.scrollWidth - t.clientWidth,
    names, lineHeight: parseFloat(getComputedStyle(t).fontSize) * 1.4,
  };
})"""


def _notebook(path) -> None:
    tracker = Tracker()
    for name in ("load", LONG, UNBROKEN):
        for _ in range(3):
            task = tracker.add(name, None)
            tracker.running(task)
            tracker.finish(task, "success")
    tracker.set_info(ended=True)
    snap = tracker.snapshot()
    cell = nbformat.v4.new_code_cell(
        "%%executor threads\nys = nbexec.map(f, range(9))\nprint('ok')"
    )
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="ok\n"),
        nbformat.v4.new_output(
            "display_data", data={"text/plain": render_text(snap), "text/html": render_html(snap)}
        ),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    _notebook(folder / "tables.ipynb")
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "nbconvert",
        "--to",
        "html",
        str(folder / "tables.ipynb"),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder / "tables.html"


@pytest.mark.parametrize("width", [500, 1200])
def test_exported_table_aligns_and_wraps(browser, exported, width):
    page = browser.new_page(viewport={"width": width, "height": 800})
    try:
        page.goto(exported.as_uri())
        (table,) = page.evaluate(MEASURE)
        page.locator(".jp-Cell").first.screenshot(
            path=str(labdriver.ARTIFACTS / f"export-{width}.png")
        )
    finally:
        page.close()
    # the table starts where the cell's text output starts (never left of it; narrow pages drop
    # the text's 1ch indent)
    assert -1 <= table["left"] - table["textLeft"] <= (2 if width > 760 else 10), table
    # nothing runs past the output column, nothing needs a scroll bar
    assert table["scroll"] <= 0 and table["right"] <= table["columnRight"] + 1, table
    assert all(name["right"] <= table["columnRight"] + 1 for name in table["names"]), table
    if width == 500:  # the long names wrap onto more lines
        heights = [name["height"] for name in table["names"]]
        assert heights[1] > 1.5 * heights[0] and heights[2] > 1.5 * heights[0], heights
