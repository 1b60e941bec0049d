"""Each notebook in notebooks/ opens and runs in JupyterLab without errors, its widgets rendering.

The notebooks are copied into the Lab server's root first (running them in Lab saves outputs).
Parametrized over whatever ``notebooks/*.ipynb`` exist when the tests are collected.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import labdriver
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.notebooks]

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
# What ipywidgets' JupyterLab manager shows for a widget view that did not render.
WIDGET_FAILURES = ("Error displaying widget", "Loading widget...")


@pytest.mark.parametrize(
    "notebook",
    NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip(reason="notebooks/ has no notebook"))],
    ids=[p.stem for p in NOTEBOOKS] or ["none"],
)
def test_notebook_runs_in_lab(lab_page: labdriver.LabPage, lab: labdriver.LabServer, notebook):
    dest = lab.root / "notebooks"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(NOTEBOOKS_DIR, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    lab_page.open(f"notebooks/{notebook.name}")
    lab_page.run_all()
    lab_page.wait_cells_done(timeout=240)

    cells = [c for c in lab_page.cells() if c["type"] == "code"]
    # Errors only in cells tagged raises-exception (as nbval and Run All read them); no stderr.
    errors = {
        c["index"]: c["errors"]
        for c in cells
        if c["errors"] and "raises-exception" not in c["tags"]
    }
    assert errors == {}, f"error outputs (cell index: errors): {errors}"
    stderr = {c["index"]: c["stderr"] for c in cells if c["stderr"]}
    assert stderr == {}, f"stderr (cell index: texts): {stderr}"
    not_run = [c["index"] for c in cells if c["source"] and c["count"] is None]
    assert not_run == [], f"cells that did not run: {not_run}"

    # Widgets rendered: no error widget, no view still loading.
    page = lab_page.page
    lab_page.wait_until(
        lambda: all(page.get_by_text(text).count() == 0 for text in WIDGET_FAILURES),
        15,
        "every widget view to render",
    )
    assert page.locator(".jupyter-widgets-error-widget").count() == 0
