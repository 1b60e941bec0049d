"""Tracebacks under ``%%executor`` read as without the magic: the cell's line, then the task's own
line, with no nbexec, dask or distributed frames, in every mode; in the cell's own traceback and in
the task table's failure entry."""

from __future__ import annotations

import re

import pytest
from fixtures_modes import CELL_MODES
from shell_helpers import MAGIC_LINES, ipython_shell

import nbexec
from nbexec import session

MODES = MAGIC_LINES

SETUP = """import nbexec

@nbexec.task
def boom(x):
    y = x + 1
    raise ValueError(f"bad {y}")

@nbexec.task
def wrapped(x):
    try:
        return {}[x]
    except KeyError:
        raise ValueError("no such key")
"""

INTERNAL = re.compile(r"File [^\n]*(nbexec/|_nbexec_remote|distributed/|dask/|concurrent/)")


@pytest.fixture(scope="module")
def shell():
    yield from ipython_shell(SETUP)


@pytest.mark.parametrize("mode", CELL_MODES)
def test_a_used_failed_value_points_at_the_cell_line_and_the_task_line(shell, capsys, mode):
    try:
        capsys.readouterr()
        result = shell.run_cell(
            f"%%executor {MODES[mode]} --no-table\na = 1\nb = boom(a)\nc = b + 2\n"
        )
        text = capsys.readouterr().out
    finally:
        session.stop()
    assert isinstance(result.error_in_exec, ValueError), text
    assert re.search(r"Cell In\[\d+\], line 3\n.*\n.*\n----> 3 c = b \+ 2", text), text
    assert re.search(r"Cell In\[\d+\], line 6, in boom", text), text
    assert "----> 6     raise ValueError" in text, text
    assert not INTERNAL.search(text), text
    assert text.count("in boom") == 1, text  # no duplicated frame


@pytest.mark.parametrize(
    "mode", ["local", "threads", pytest.param("processes", marks=pytest.mark.slow)]
)
def test_a_failed_task_points_at_the_task_line(shell, capsys, mode):
    try:
        capsys.readouterr()
        result = shell.run_cell(f"%%executor {MODES[mode]} --no-table\na = 1\nb = boom(a)\n")
        text = capsys.readouterr().out
    finally:
        session.stop()
    assert result.error_in_exec is not None, text
    assert "----> 6     raise ValueError" in text, text
    assert not INTERNAL.search(text), text
    assert text.count("in boom") == 1, text  # the task's frame once (not again under TaskFailed)
    assert "TaskFailed: task 'boom' failed: ValueError: bad 2" in text, text


@pytest.mark.parametrize("used", [False, True], ids=["failed", "used"])
@pytest.mark.parametrize("mode", CELL_MODES)
def test_the_table_failure_entry_reads_as_without_the_magic(shell, capsys, mode, used):
    cell = "a = 1\nb = boom(a)\n" + ("c = b + 2\n" if used else "")
    try:
        capsys.readouterr()
        result = shell.run_cell(f"%%executor {MODES[mode]} --no-table\n{cell}")
        shown = capsys.readouterr().out
        (entry,) = nbexec.runs()[-1].snapshot().failures
    finally:
        session.stop()
    assert result.error_in_exec is not None, shown
    cell_no = re.search(r"Cell In\[(\d+)\], line 6, in boom", shown)  # the cell's own traceback
    assert cell_no, shown
    text = entry.traceback
    assert text is not None
    assert text.startswith("Traceback (most recent call last):\n"), text
    assert f"  Cell In[{cell_no[1]}], line 6, in boom\n" in text, text
    assert '    raise ValueError(f"bad {y}")\n' in text, text
    assert "ValueError: bad 2" in text, text
    assert text.count("File ") == 0, text  # no nbexec, dask, distributed or pool frames
    assert "ipython-input" not in text and "ipykernel" not in text, text
    assert text.count("in boom") == 1, text  # no duplicated frame


@pytest.mark.parametrize("mode", ["local", "threads"])
def test_a_chained_failure_reads_as_without_the_magic_in_the_table(shell, mode):
    try:
        result = shell.run_cell(f"%%executor {MODES[mode]} --no-table\nw = wrapped('k')\n")
        (entry,) = nbexec.runs()[-1].snapshot().failures
    finally:
        session.stop()
    assert result.error_in_exec is not None
    text = entry.traceback
    assert text is not None
    assert "During handling of the above exception, another exception occurred" in text, text
    assert re.search(r"Cell In\[\d+\], line 11, in wrapped\n    return \{\}\[x\]\n", text), text
    assert re.search(r"Cell In\[\d+\], line 13, in wrapped\n    raise ValueError", text), text
    assert "File " not in text, text  # neither exception of the chain keeps nbexec's frames
