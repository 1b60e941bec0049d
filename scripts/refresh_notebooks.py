"""Re-execute the notebooks in notebooks/ and store them with fresh outputs.

    python scripts/refresh_notebooks.py                 # re-execute every notebook in notebooks/
    python scripts/refresh_notebooks.py 01 03           # only those whose name starts so
    python scripts/refresh_notebooks.py --from-source draft/06-new.py   # new notebooks/06-new.ipynb

The .ipynb files are the source of truth: edit them in JupyterLab, then refresh. ``--from-source``
writes notebooks/NAME.ipynb from a percent-format file NAME.py (cells start at ``# %%`` lines,
markdown cells at ``# %% [markdown]``, their lines prefixed with ``# ``; cell tags as
jupytext writes them, ``# %% tags=["raises-exception"]``) and executes it.
Execution uses nbclient with the ``python3`` kernel, the notebook's folder as working directory and
``NBEXEC_EXECUTOR`` removed, so each notebook stores the outputs of the modes it names.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from nbexec.testing import prune_widget_state

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
MAX_BYTES = 1 << 20
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_CELL = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*?\]))?[^\n]*\n", re.MULTILINE)


def cells_from_source(text: str) -> list[nbformat.NotebookNode]:
    """Notebook cells from percent-format text (``# %%`` code, ``# %% [markdown]`` markdown).

    A header may end with jupytext's ``tags=["raises-exception"]``.
    """
    cells = []
    marks = list(_CELL.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body = text[mark.end() : end].strip("\n")
        if mark.group("md"):
            lines = [
                line[2:] if line.startswith("# ") else line.lstrip("#")
                for line in body.splitlines()
            ]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
        else:
            cells.append(nbformat.v4.new_code_cell(body))
        if mark.group("tags"):
            cells[-1].metadata["tags"] = json.loads(mark.group("tags"))
    return cells


def create(source: Path) -> Path:
    """Write notebooks/NAME.ipynb (unexecuted) from the percent-format file NAME.py."""
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_from_source(source.read_text(encoding="utf-8"))
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    path = NOTEBOOKS / f"{source.stem}.ipynb"
    nbformat.write(nb, path)
    return path


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def keep_static_views(nb: nbformat.NotebookNode) -> int:
    """Drop the widget view of outputs that also carry a static ``text/html`` (the executor
    panel): the saved notebook shows that view everywhere, and the widget's models (a form is
    a tree of ~120 of them) need not be stored. Returns how many widget views were dropped."""
    dropped = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and "text/html" in data:
                del data[WIDGET_VIEW]
                dropped += 1
    return dropped


def _tidy(nb: nbformat.NotebookNode) -> None:
    """Stable ids and metadata so that refreshes give small diffs; static views rather than
    widget views where an output has both; only the shown widget models."""
    keep_static_views(nb)
    prune_widget_state(nb)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:02d}"
        cell.metadata.pop("execution", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    # language_info stays as the kernel reported it: JupyterLab merges the kernel's into the
    # notebook when it connects, and any difference marks a just-opened notebook modified.


def execute(path: Path, timeout: float = 300) -> float:
    """Execute ``path`` in place; returns the seconds it took. Raises on a failing cell."""
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != "NBEXEC_EXECUTOR"}
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    start = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - start
    _tidy(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    size = path.stat().st_size
    if size >= MAX_BYTES:
        raise SystemExit(f"{path.name} is {size} bytes; notebooks must stay under 1 MiB")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook name prefixes (default: all)")
    parser.add_argument(
        "--from-source",
        action="append",
        default=[],
        type=Path,
        metavar="NAME.py",
        help="(re)write notebooks/NAME.ipynb from a percent-format file, then execute it",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    created = [create(source) for source in args.from_source]
    paths = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if not p.name.endswith(".out.ipynb"))
    if created and not args.names:
        paths = created
    elif args.names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in args.names)]
    if not paths:
        print("no notebooks matched", file=sys.stderr)
        return 2
    for path in paths:
        try:
            seconds = execute(path, args.timeout)
        except CellExecutionError as exc:
            print(f"{path.relative_to(ROOT)}: {exc}", file=sys.stderr)
            return 1
        kib = path.stat().st_size / 1024
        print(f"executed {path.relative_to(ROOT)} in {seconds:.1f} s ({kib:.0f} KiB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
