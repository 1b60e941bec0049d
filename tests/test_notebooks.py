"""notebooks/: stored with outputs, and strict ``pytest --nbval`` passes with nbexec's sanitize file.

nbval runs in a subprocess (as CI and users run it) under three settings of ``NBEXEC_EXECUTOR``:
unset (each cell's own mode), ``local`` and ``threads``; all compare with the same stored outputs.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import nbexec.testing

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(
    p for p in (ROOT / "notebooks").glob("*.ipynb") if not p.name.endswith(".out.ipynb")
)
EXPECTED = [
    "01-quickstart",
    "02-widgets",
    "03-distributed",
    "04-testing-notebooks",
    "05-executors-api",
    "06-dask-adoption",
    "07-background-and-control",
    "08-cluster-forms",
]


def test_the_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_for_readers_without_a_kernel(path):
    """Under 1 MiB, python3 kernelspec, every code cell executed, no unexpected errors."""
    assert path.stat().st_size < 1 << 20
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "refresh with scripts/refresh_notebooks.py"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        tags = cell.metadata.get("tags", [])
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert bool(errors) == ("raises-exception" in tags), cell.source
        for output in cell.outputs:
            assert not (output.output_type == "stream" and output.name == "stderr"), cell.source
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                # the text static viewers show, and the one nbval compares: never a trait dump
                # (a live view left as it is, e.g. a background cell's, carries only the view)
                assert set(data) <= {"application/vnd.jupyter.widget-view+json", "text/plain"}
                text = data.get("text/plain", "")
                assert not text.startswith(("VBox(", "HTML(", "HBox(")), cell.source
            # an %%executor cell's live view is blanked when it ends, then its static view shown
            assert "tasks: none" not in data.get("text/plain", ""), cell.source


def _nbval(env_value: str | None, paths: list[Path]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NBEXEC_EXECUTOR"}
    if env_value is not None:
        env["NBEXEC_EXECUTOR"] = env_value
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--color=no",
        *nbexec.testing.nbval_args(), *map(str, paths),
    ]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize(
    "env_value", [None, "local", "threads"], ids=["own-modes", "local", "threads"]
)
def test_strict_nbval_passes(env_value):
    proc = _nbval(env_value, NOTEBOOKS)
    tail = proc.stdout[-6000:]
    assert proc.returncode == 0, tail + proc.stderr[-2000:]
    passed = re.search(r"(\d+) passed", proc.stdout.splitlines()[-1])
    code_cells = sum(
        1 for p in NOTEBOOKS for c in nbformat.read(p, 4).cells if c.cell_type == "code"
    )
    assert passed and int(passed.group(1)) == code_cells, tail


def _stored_rows(nb) -> list[tuple[str, str]]:
    """(task name, states) rows from the stored static views' text/plain, e.g. ("parse", "3 success, 1 failed")."""
    rows = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            if text.startswith("nbexec tasks:"):
                for line in text.splitlines()[1:]:
                    if m := re.fullmatch(r"  (\S+)\s+(\d+ \w+(?:, \d+ \w+)*)", line):
                        rows.append((m.group(1), m.group(2)))
    return rows


def _html_rows(page: str) -> list[list[str]]:
    """The text of each table row's cells, tags stripped."""
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", td)).strip()
            for td in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        ]
        for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S)
    ]


@pytest.mark.slow
def test_nbconvert_html_shows_the_task_table(tmp_path):
    """``jupyter nbconvert --to html`` of a stored notebook (no kernel, no widget state needed):
    the page carries the static task table as HTML, with the stored task names and counts."""
    path = ROOT / "notebooks" / "01-quickstart.ipynb"
    expected = _stored_rows(nbformat.read(path, as_version=4))
    assert expected, "01-quickstart stores no nbexec table"
    command = [
        sys.executable, "-m", "jupyter", "nbconvert", "--to", "html",
        "--output-dir", str(tmp_path), str(path),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (tmp_path / "01-quickstart.html").read_text()
    assert "nbexec-table" in page and "&lt;table" not in page  # rendered, not escaped text
    rows = _html_rows(page)
    for name, states in expected:
        # the row: task name, progress bar, done n/n, states "N success, ...", mean, max
        assert any(r[:1] == [name] and r[3:4] == [states] for r in rows), (name, states, rows)
    assert ">finished</b>" in page
