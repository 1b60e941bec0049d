"""The command line: ``nbexec demo`` and ``nbexec run NOTEBOOK``.

Exit status: 0 success, 1 a cell failed (or timed out, or the kernel died), 2 bad input (missing or
malformed notebook, unknown mode, bad options), 130 interrupted. Bad input is one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ..config.options import MODE_HELP, MODES, OPTIONS, LineError, RaisingParser, parse_line
from ..config.options import seconds as positive_seconds
from ..session import ENV_VAR
from ..testing import prune_widget_state

__all__ = ["main", "build_parser", "cell_summary", "default_output", "UsageFailure"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
SUMMARY_PREFIX = "nbexec tasks:"


class UsageFailure(Exception):
    """Bad input: reported as one line on stderr with exit status 2."""


def _executor_help() -> str:
    width = max(len(", ".join(o.flags)) for o in OPTIONS) + 2
    lines = ["executor line (--executor, and NBEXEC_EXECUTOR): MODE [OPTIONS]", "  MODE:"]
    for mode in MODES:
        takes = ", ".join(o.flags[-1] for o in OPTIONS if mode in o.modes) or "no options"
        if all(mode in o.modes for o in OPTIONS):
            takes = "every option below (a new LocalCluster unless --address)"
        lines.append(f"    {mode:<{width - 2}}{MODE_HELP[mode]}; takes {takes}")
    lines.append("  OPTIONS:")
    for option in OPTIONS:
        lines.append(f"    {', '.join(option.flags):<{width}}{option.help}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``nbexec`` argument parser (errors raise ``LineError``)."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = RaisingParser(
        prog="nbexec",
        formatter_class=formatter,
        description="Run Python work from notebooks on the executor you pick.",
        epilog=(
            "commands:\n"
            "  nbexec demo                      the same small workload through every mode\n"
            "  nbexec run NOTEBOOK [options]    execute a notebook headless under a mode\n\n"
            "exit status: 0 ok, 1 a cell failed, 2 bad input, 130 interrupted\n\n"
            + _executor_help()
        ),
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"nbexec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=RaisingParser)
    sub.add_parser(
        "demo",
        help="run a small workload (two dependent tasks and a map) through every mode",
        description=(
            "Run two dependent tasks and a map through local, sync, threads, processes and dask "
            "(a LocalCluster on 127.0.0.1), print the results and timings, and stop everything. "
            "Exits 0 when every mode gives the same results."
        ),
    )
    run = sub.add_parser(
        "run",
        help="execute a notebook headless under a chosen mode",
        formatter_class=formatter,
        description=(
            "Execute NOTEBOOK with nbclient in a new kernel. --executor sets NBEXEC_EXECUTOR in\n"
            "the kernel's environment, so it replaces every mode the notebook names (magics,\n"
            "nbexec.use, nbexec.run with a mode name); without it, an NBEXEC_EXECUTOR already\n"
            "set in the environment applies. Prints cell i/n as it goes and each cell's nbexec\n"
            "task summary. The input notebook is left unchanged; the executed notebook is\n"
            "written to --output, by default NAME.out.ipynb next to NOTEBOOK. On a failing\n"
            "cell it prints the cell and the error, still writes the output, and exits 1."
        ),
        epilog=_executor_help(),
    )
    run.add_argument("notebook", metavar="NOTEBOOK", help="the .ipynb file to execute")
    run.add_argument(
        "--executor",
        "-e",
        metavar='"MODE [OPTIONS]"',
        help="executor line for every cell, e.g. 'threads -n 2' or 'dask --address tcp://h:8786'",
    )
    run.add_argument(
        "--output",
        "-o",
        metavar="OUT.ipynb",
        help="where to write the executed notebook (default: NAME.out.ipynb next to NOTEBOOK; "
        "give NOTEBOOK itself to update it in place)",
    )
    run.add_argument(
        "--timeout",
        type=positive_seconds,
        default=600.0,
        metavar="S",
        help="seconds each cell may take (default 600)",
    )
    run.add_argument(
        "--kernel",
        metavar="NAME",
        help="kernel name (default: the notebook's kernelspec, else python3)",
    )
    return parser


def default_output(notebook: Path) -> Path:
    """``dir/NAME.out.ipynb`` for ``dir/NAME.ipynb``."""
    name = notebook.name[: -len(".ipynb")] if notebook.name.endswith(".ipynb") else notebook.name
    return notebook.with_name(name + ".out.ipynb")


def check_executor_line(line: str, source: str = "--executor") -> str:
    """``line`` stripped, if it is a valid executor line naming a mode; else ``UsageFailure``."""
    from ..config.modes import validate

    line = line.strip()
    what = f"{source} {line!r}" if source.startswith("-") else f"{source}={line!r}"
    try:
        mode, options = parse_line(line)
    except LineError as exc:
        raise UsageFailure(f"{what}: {exc}") from None
    if mode is None:
        raise UsageFailure(f"{what} names no mode; valid modes: {', '.join(MODES)}")
    try:
        validate(mode, options)
    except ValueError as exc:
        raise UsageFailure(f"{what}: {exc}") from None
    return line


def read_notebook(path: Path) -> Any:
    """The notebook at ``path`` (nbformat 4), or ``UsageFailure`` saying why it cannot be read."""
    if not path.exists():
        raise UsageFailure(f"no such notebook: {path}")
    if not path.is_file():
        raise UsageFailure(f"not a file: {path}")
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        first = str(exc.message).splitlines()[0] if exc.message else "invalid"
        raise UsageFailure(f"malformed notebook {path}: {first}") from None
    except Exception as exc:  # NotJSONError, UnicodeDecodeError, KeyError on junk JSON...
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageFailure(f"malformed notebook {path}: {detail[:200]}") from None
    return nb


def cell_summary(cell: Any) -> str | None:
    """The nbexec task summary of an executed cell: the text of its last summary output, if any.

    Prefers ``metadata["nbexec"]["summary_text"]`` of an output (the widgets' summary), then any
    ``text/plain`` that starts with ``nbexec tasks:``.
    """
    found = None
    for output in cell.get("outputs", ()):
        if output.get("output_type") not in ("display_data", "execute_result"):
            continue
        meta = (output.get("metadata") or {}).get("nbexec")
        if isinstance(meta, dict) and isinstance(meta.get("summary_text"), str):
            found = meta["summary_text"]
            continue
        text = (output.get("data") or {}).get("text/plain")
        if isinstance(text, list):
            text = "".join(text)
        if isinstance(text, str) and text.startswith(SUMMARY_PREFIX):
            found = text
    return found


def _error_text(cell: Any) -> str:
    for output in cell.get("outputs", ()):
        if output.get("output_type") == "error":
            trace = "\n".join(output.get("traceback") or ())
            trace = _ANSI.sub("", trace).rstrip()
            return trace or f"{output.get('ename')}: {output.get('evalue')}"
    return ""


def missing_imports(nb: Any) -> list[str]:
    """Top-level modules the notebook's code cells import that cannot be found here (sorted).

    Lines that are IPython syntax (``%magic``, ``!shell``) and cells that are not Python (a
    ``%%`` cell magic other than ``%%executor``) are skipped; a cell that does not parse is too.
    """
    import ast
    import importlib.util

    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        if lines and lines[0].startswith("%%") and not lines[0].startswith("%%executor"):
            continue
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    missing = []
    for name in sorted(names):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


_NO_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def run_notebook(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``nbexec run``: execute, report per cell, write the result; returns the exit status."""
    path = Path(args.notebook)
    if not path.is_file():
        raise UsageFailure(
            f"no such notebook: {path}" if not path.exists() else f"not a file: {path}"
        )
    line = check_executor_line(args.executor) if args.executor is not None else None
    if line is None and os.environ.get(ENV_VAR, "").strip():
        check_executor_line(os.environ[ENV_VAR], ENV_VAR)
    output = Path(args.output) if args.output else default_output(path)
    if output.exists() and output.is_dir():
        raise UsageFailure(f"--output {output} is a directory")
    if not output.parent.is_dir():
        raise UsageFailure(f"--output {output}: no such directory {output.parent}")
    try:
        import nbformat
        from jupyter_client.kernelspec import NoSuchKernel
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as exc:
        raise UsageFailure(f"nbexec run needs nbclient (pip install nbclient): {exc}") from None
    nb = read_notebook(path)
    env = dict(os.environ)
    if line is not None:
        env[ENV_VAR] = line
    forced = env.get(ENV_VAR, "").strip()

    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]
    position = {index: n + 1 for n, index in enumerate(code)}
    started: dict[str, float] = {}
    where = f" under {ENV_VAR}={forced!r}" if forced else ""
    print(f"nbexec run: {path} ({len(code)} code cells){where}", file=out, flush=True)
    missing = missing_imports(nb)
    if missing:
        print(
            f"nbexec run: the notebook imports {', '.join(missing)}, not installed here "
            f"(pip install {' '.join(missing)})",
            file=err,
            flush=True,
        )

    def on_execute(cell: Any, cell_index: int, **_: Any) -> None:
        first = next((s for s in cell.source.splitlines() if s.strip()), "")
        print(f"cell {position[cell_index]}/{len(code)}: {first[:70]}", file=out, flush=True)
        started["t"] = time.perf_counter()

    def on_executed(cell: Any, cell_index: int, execute_reply: Any = None, **_: Any) -> None:
        seconds = time.perf_counter() - started.get("t", time.perf_counter())
        summary = cell_summary(cell)
        if summary:
            print(_indent(summary), file=out)
        failed = (execute_reply or {}).get("content", {}).get("status") == "error"
        verdict = "failed" if failed else "done"
        if failed and "raises-exception" in cell.metadata.get("tags", ()):
            verdict = "raised, as its raises-exception tag allows,"
        print(f"    {verdict} in {seconds:.2f} s", file=out, flush=True)

    kernel = args.kernel or (nb.metadata.get("kernelspec") or {}).get("name") or "python3"
    client = NotebookClient(
        nb,
        # The kernel's own log (not cell output) would warn on stderr about unencrypted TCP
        # on 127.0.0.1; keep its errors only.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        timeout=args.timeout,
        kernel_name=kernel,
        resources={"metadata": {"path": str(path.resolve().parent)}},
        on_cell_execute=on_execute,
        on_cell_executed=on_executed,
    )
    status = 0
    t0 = time.perf_counter()
    try:
        client.execute(env=env)
    except NoSuchKernel:
        raise UsageFailure(f"no kernel named {kernel!r} (use --kernel NAME)") from None
    except CellExecutionError:
        index = _failed_cell(nb)
        cell = nb.cells[index] if index is not None else None
        n = position.get(index, "?") if index is not None else "?"
        print(f"nbexec run: cell {n}/{len(code)} failed:", file=err)
        if cell is not None:
            print(_indent(cell.source), file=err)
            text = _error_text(cell)
            print(_indent(text), file=err)
            module = _NO_MODULE.search(text)
            if module:
                package = module.group(1).split(".")[0]
                print(f"nbexec run: missing package {package!r} (pip install {package})", file=err)
        status = 1
    except CellTimeoutError:
        print(f"nbexec run: a cell took longer than {args.timeout:g} s (--timeout)", file=err)
        status = 1
    except DeadKernelError:
        print("nbexec run: the kernel died", file=err)
        status = 1
    except RuntimeError as exc:  # e.g. "Kernel didn't respond in 60 seconds"
        print(f"nbexec run: the kernel failed: {exc}", file=err)
        status = 1
    # nbclient keeps every widget model the kernel opened; the live tables' ones closed when
    # their cells ended and no output shows them
    prune_widget_state(nb)
    nbformat.write(nb, output)
    verdict = "ok" if status == 0 else "FAILED"
    print(
        f"nbexec run: {verdict} in {time.perf_counter() - t0:.1f} s; wrote {output}",
        file=out,
        flush=True,
    )
    return status


def _failed_cell(nb: Any) -> int | None:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(
            o.get("output_type") == "error" for o in cell.get("outputs", ())
        ):
            return index
    return None


def main(
    argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of ``nbexec`` / ``python -m nbexec``; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except LineError as exc:  # one line, no usage block
            raise UsageFailure(f"{exc} (see '{exc.prog} --help')") from None
        if args.command is None:
            raise UsageFailure(
                "no command; use 'nbexec demo' or 'nbexec run NOTEBOOK' (see --help)"
            )
        if args.command == "demo":
            from .demo import main as demo

            return demo(out)
        return run_notebook(args, out, err)
    except UsageFailure as exc:
        print(f"nbexec: error: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print("nbexec: interrupted", file=err)
        return 130
