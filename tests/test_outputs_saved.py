"""What the shipped notebooks keep on disk: a few KB per ``%%executor`` cell, no residue."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _executor_cells(nb: dict) -> list[dict]:
    return [
        c
        for c in nb["cells"]
        if c["cell_type"] == "code" and "".join(c["source"]).lstrip().startswith("%%executor")
    ]


def test_quickstart_is_well_under_100_kb():
    size = (Path(__file__).parent.parent / "notebooks" / "01-quickstart.ipynb").stat().st_size
    assert size < 100_000, f"quickstart is {size} bytes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_well_under_100_kb(path):
    assert path.stat().st_size < 80_000, f"{path.name} is {path.stat().st_size} bytes"


def _refresh_script():
    spec = importlib.util.spec_from_file_location(
        "refresh_notebooks", ROOT / "scripts" / "refresh_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_saved_panel_is_a_small_static_view(tmp_path, monkeypatch):
    """Executed with nbclient and stored as the refresh script stores notebooks, a cell showing
    the executor panel keeps its static HTML (no widget view pointing at a model) and none of the
    panel's ~120 widget models: the file stays a few KB and reads well without a kernel."""
    import nbformat

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = tmp_path / "panel.ipynb"
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("import nbexec\nnbexec.ExecutorPanel()")]
    )
    nbformat.write(nb, path)
    _refresh_script().execute(path, timeout=120)
    saved = json.loads(path.read_text())
    (out,) = saved["cells"][0]["outputs"]
    assert set(out["data"]) == {"text/plain", "text/html"}
    assert "executor panel" in "".join(out["data"]["text/html"])
    assert "widgets" not in saved["metadata"]
    assert path.stat().st_size < 6_000, path.stat().st_size


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_executor_cell_keeps_a_few_kb_and_one_static_table(path):
    nb = json.loads(path.read_text())
    for cell in _executor_cells(nb):
        first_line = "".join(cell["source"]).splitlines()[0]
        tables = [
            o["data"]
            for o in cell["outputs"]
            if "text/html" in o.get("data", {}) and "nbexec" in "".join(o["data"]["text/html"])
        ]
        texts = "".join("".join(o.get("data", {}).get("text/plain", "")) for o in cell["outputs"])
        assert "tasks: none" not in texts
        # a table with many Dask prefix rows measures ~12 KB; most are 3.5-6.5 KB
        for table in tables:
            size = len(json.dumps(table))
            assert size < 16_000, f"{path.name}: a static table of {size} bytes"
        if "--background" in first_line:
            continue
        assert len(tables) == 1, f"{path.name}: {len(tables)} static tables in one cell"
        # the live table's (and dashboard's) widget view is closed with the cell: no model id
        # to point at; a --dashboard cell keeps its task stream as an image
        assert not any(WIDGET_VIEW in o.get("data", {}) for o in cell["outputs"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebooks_are_nbformat_4_5_and_unsigned(path):
    nb = json.loads(path.read_text())
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, 5)
    assert "signature" not in nb["metadata"]
