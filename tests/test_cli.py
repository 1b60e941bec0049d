"""The command line: ``nbexec --help``, ``nbexec demo``, ``nbexec run NOTEBOOK`` and bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbexec.frontends.cli import cell_summary, default_output, main

ROOT = Path(__file__).resolve().parent.parent


def _cli(*argv: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "NBEXEC_EXECUTOR"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "nbexec", *argv],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
        cwd=ROOT,
    )


def _in_process(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out, err)
    return status, out.getvalue(), err.getvalue()


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# test")])
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def test_help_documents_commands_modes_and_options():
    proc = _cli("--help")
    assert proc.returncode == 0, proc.stderr
    for word in (
        "demo",
        "run NOTEBOOK",
        "NBEXEC_EXECUTOR",
        "--workers",
        "--address",
        "exit status",
    ):
        assert word in proc.stdout
    for mode in ("local", "sync", "threads", "processes", "dask"):
        assert mode in proc.stdout
    run_help = _cli("run", "--help")
    assert run_help.returncode == 0
    for word in ("--executor", "--output", "--timeout", ".out.ipynb", "in place"):
        assert word in run_help.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("nbexec")
    assert script.exists(), "pip install -e . should create the nbexec console script"
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("nbexec ")


@pytest.mark.parametrize(
    "argv, message",
    [
        ((), "no command"),
        (("frob",), "invalid choice: 'frob' (choose from 'demo', 'run') (see 'nbexec --help')"),
        (("run",), "required: NOTEBOOK (see 'nbexec run --help')"),
        (("run", "missing.ipynb"), "no such notebook"),
        (("run", "{nb}", "--executor", "warp"), "unknown mode 'warp'"),
        (("run", "{nb}", "--executor", "threads --address tcp://h:1"), "does not fit mode"),
        (("run", "{nb}", "--executor", "dask -n many"), "expected a whole number"),
        (("run", "{nb}", "--executor", "dask --cluster-kwargs {"), "JSON object"),
        (("run", "{nb}", "--executor", "dask --frobnicate"), "unrecognized arguments"),
        (("run", "{nb}", "--executor", "-n 2"), "names no mode"),
        (("run", "{nb}", "--timeout", "-1"), "seconds > 0"),
        (("run", "{nb}", "--output", "/no/such/dir/x.ipynb"), "no such directory"),
        (("run", "{bad_json}"), "malformed notebook"),
        (("run", "{not_nb}"), "malformed notebook"),
        (("run", "{tmp}"), "not a file"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, argv, message):
    paths = {
        "nb": str(_notebook(tmp_path / "ok.ipynb", "1")),
        "bad_json": str(tmp_path / "bad.ipynb"),
        "not_nb": str(tmp_path / "list.ipynb"),
        "tmp": str(tmp_path),
    }
    Path(paths["bad_json"]).write_text('{"cells": [', encoding="utf-8")
    Path(paths["not_nb"]).write_text("[1, 2, 3]", encoding="utf-8")
    status, out, err = _in_process(*(paths.get(a.strip("{}"), a) for a in argv))
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("nbexec: error: "), err
    assert message in err
    assert "Traceback" not in err + out


def test_bad_input_from_the_environment_and_from_python_m(tmp_path):
    nb = _notebook(tmp_path / "ok.ipynb", "1")
    proc = _cli("run", str(nb), env={"NBEXEC_EXECUTOR": "threads --adapt 1 2"})
    assert proc.returncode == 2
    assert proc.stderr.startswith("nbexec: error: NBEXEC_EXECUTOR='threads --adapt 1 2'")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    missing = _cli("run", str(tmp_path / "nope.ipynb"))
    assert (missing.returncode, missing.stderr.count("\n")) == (2, 1)


def test_default_output_is_next_to_the_notebook():
    assert default_output(Path("notebooks/01-quickstart.ipynb")) == Path(
        "notebooks/01-quickstart.out.ipynb"
    )


def test_cell_summary_prefers_metadata_then_text():
    text = "nbexec tasks: 2 tasks - 2 success\n  f  2 success"
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="nbexec tasks: not a summary"),
        nbformat.v4.new_output("display_data", data={"text/plain": "nbexec tasks: none"}),
        nbformat.v4.new_output("display_data", data={"text/plain": text}),
    ]
    assert cell_summary(cell) == text
    cell.outputs.append(
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "widget"},
            metadata={"nbexec": {"summary_text": "nbexec tasks: 3 tasks - 3 success"}},
        )
    )
    assert cell_summary(cell) == "nbexec tasks: 3 tasks - 3 success"
    assert cell_summary(nbformat.v4.new_code_cell("y")) is None


@pytest.mark.slow
def test_run_executes_under_the_chosen_mode_and_writes_the_output(tmp_path):
    nb = _notebook(
        tmp_path / "work.ipynb",
        "import os, nbexec\nprint(os.environ.get('NBEXEC_EXECUTOR'))",
        "with nbexec.run('local') as run:\n    parts = nbexec.map(abs, [-1, -2, 3])\n"
        "print(type(run.executor).__name__, run.summary())",
        "from IPython.display import display\n"
        "display({'text/plain': 'nbexec tasks: 3 tasks - 3 success\\n  abs  3 success'}, raw=True)",
    )
    before = nb.read_bytes()
    proc = _cli("run", str(nb), "--executor", "threads -n 2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    assert nb.read_bytes() == before
    lines = proc.stdout.splitlines()
    assert "cell 1/3: import os, nbexec" in lines
    assert "cell 3/3: from IPython.display import display" in lines
    assert "    nbexec tasks: 3 tasks - 3 success" in lines
    out = nbformat.read(tmp_path / "work.out.ipynb", as_version=4)
    assert out.cells[1].outputs[0]["text"] == "threads -n 2\n"
    assert out.cells[2].outputs[0]["text"].startswith("LocalDaskExecutor {'abs': {'success': 3}}")


@pytest.mark.slow
def test_the_written_notebook_keeps_only_the_widget_models_its_outputs_show(tmp_path):
    # the live table's models (each with its JavaScript, some still saying "running") are
    # closed when the cell ends; the saved file keeps only what an output still shows
    from nbexec.testing import prune_widget_state

    nb = _notebook(
        tmp_path / "cells.ipynb",
        "%load_ext nbexec",
        "%%executor threads -n 2\nparts = [abs(-i) for i in range(3)]",
        "%%executor local\nimport nbexec\ntotal = sum(nbexec.map(abs, [-1, -2]))",
    )
    proc = _cli("run", str(nb))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = nbformat.read(tmp_path / "cells.out.ipynb", as_version=4)
    assert any("text/html" in o.get("data", {}) for o in out.cells[3].outputs), out.cells[3]
    assert prune_widget_state(out) == 0, out.metadata.get("widgets")


@pytest.mark.slow
def test_run_reports_a_failing_cell_and_exits_1(tmp_path):
    nb = _notebook(tmp_path / "fails.ipynb", "x = 1", "def f():\n    return 1 / 0\nf()", "print(2)")
    target = tmp_path / "executed.ipynb"
    proc = _cli("run", str(nb), "--output", str(target))
    assert proc.returncode == 1
    assert "nbexec run: cell 2/3 failed:" in proc.stderr
    assert "    def f():" in proc.stderr and "ZeroDivisionError" in proc.stderr
    assert "nbexec/frontends/cli.py" not in proc.stderr and "\x1b[" not in proc.stderr
    assert "cell 3/3" not in proc.stdout
    executed = nbformat.read(target, as_version=4)
    assert executed.cells[2].outputs[-1]["output_type"] == "error"


@pytest.mark.slow
def test_demo_runs_every_mode_with_identical_results():
    proc = _cli("demo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rows = [line.split(None, 1) for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert [mode for mode, _ in rows] == ["local", "sync", "threads", "processes", "dask"]
    results = {rest.split(" tasks ")[0] for _, rest in rows}
    assert results == {"total=45  squares=[0, 1, 4, 9, 16, 25, 36, 49]  10"}
    assert "identical results in every mode" in proc.stdout


def test_missing_imports_are_found_before_running():
    from nbexec.frontends.cli import missing_imports

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "%load_ext nbexec\nimport os, nbexec\nfrom json import dumps"
            ),
            nbformat.v4.new_code_cell("%%executor threads\nimport no_such_pkg_nbexec.sub"),
            nbformat.v4.new_code_cell("%%bash\nimport not_python"),
            nbformat.v4.new_code_cell("from . import relative\nimport also_missing_nbexec"),
        ]
    )
    assert missing_imports(nb) == ["also_missing_nbexec", "no_such_pkg_nbexec"]


@pytest.mark.slow
def test_run_names_a_missing_package(tmp_path):
    nb = _notebook(tmp_path / "needs.ipynb", "import no_such_pkg_nbexec\nprint(1)")
    proc = _cli("run", str(nb), "--output", str(tmp_path / "out.ipynb"))
    assert proc.returncode == 1
    assert "imports no_such_pkg_nbexec, not installed here" in proc.stderr
    assert "missing package 'no_such_pkg_nbexec' (pip install no_such_pkg_nbexec)" in proc.stderr
