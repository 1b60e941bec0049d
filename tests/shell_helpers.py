"""A real IPython ``InteractiveShell`` with nbexec loaded, and the magic's line for each mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from nbexec import session

#: ``%%executor`` lines for every mode, sized for this 2-core machine.
MAGIC_LINES = {
    "local": "local",
    "sync": "sync",
    "threads": "threads -n 2",
    "processes": "processes -n 2",
    "dask": "dask --no-processes -n 1 --threads-per-worker 2",
}

#: The setup cell the shell tests share: ``inc`` and ``add`` tasks and a plain ``Box`` class.
TASKS = """import nbexec

@nbexec.task
def inc(x):
    return x + 1

@nbexec.task
def add(x, y):
    return x + y

class Box:
    pass
"""


def ipython_shell(setup: str = "") -> Iterator[InteractiveShell]:
    """Yield the shell (no colours, ``%load_ext nbexec``, ``setup`` run); stop the session after."""
    sh = InteractiveShell.instance()
    sh.run_line_magic("colors", "nocolor")
    sh.run_line_magic("load_ext", "nbexec")
    if setup:
        assert sh.run_cell(setup).success
    yield sh
    session.stop()


def run_cell(shell: InteractiveShell, code: str) -> Any:
    """Run a cell and return its value; raise what it raised (``run_cell`` shows and swallows it)."""
    result = shell.run_cell(code)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result
