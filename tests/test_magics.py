"""``%executor`` / ``%%executor`` through a real IPython ``InteractiveShell`` (``run_cell``)."""

from __future__ import annotations

import sys
import time

import pytest
from IPython.core.error import UsageError
from shell_helpers import MAGIC_LINES, TASKS, ipython_shell, run_cell

import nbexec
from nbexec import session
from nbexec.config.options import DISPLAY_OPTIONS, OPTIONS, build_parser
from nbexec.core.run import TaskFailed, TaskFuture
from nbexec.frontends import magics

MODES = MAGIC_LINES

SETUP = (
    TASKS
    + """
@nbexec.task
def boom(x):
    raise ValueError(f"bad value {x}")
"""
)


@pytest.fixture(scope="module")
def shell():
    yield from ipython_shell(SETUP)


pytestmark = pytest.mark.usefixtures("clean_session")


# --- the one table of options -----------------------------------------------------------------


def test_help_documents_every_option(shell):
    doc = shell.find_line_magic("executor").__doc__
    for option in OPTIONS + DISPLAY_OPTIONS:
        for flag in option.flags:
            assert flag in doc
        assert option.help.split(",")[0] in doc.replace("\n", " ").replace("  ", " ")
    for mode in nbexec.MODES:
        assert mode in doc
    magic_flags = {
        s for a in magics.ExecutorMagics.executor.parser._actions for s in a.option_strings
    }
    core_flags = {s for a in build_parser(display_options=True)._actions for s in a.option_strings}
    assert magic_flags == core_flags


# --- every mode gives the same values ---------------------------------------------------------

CELL = """
a = inc(1)
b = add(a, 10)
many = nbexec.map(inc, range(5))
nested = [a, (b, {"c": inc(100), "plain": 7}), "text"]
alias = nested
box = Box()
box.orig = nested
for i in range(2):
    last_loop = inc(i)
untouched = 42
(a, b, nested[1][1]["c"])
"""


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_binds_the_same_values(shell, mode):
    value = run_cell(shell, f"%%executor {MODES[mode]} --no-table\n{CELL}")
    ns = shell.user_ns
    assert ns["a"] == 2
    assert ns["b"] == 12
    assert ns["many"] == [1, 2, 3, 4, 5]
    assert ns["nested"] == [2, (12, {"c": 101, "plain": 7}), "text"]
    assert ns["last_loop"] == 2
    assert ns["untouched"] == 42
    # the last expression comes out resolved
    assert value == (2, 12, 101)
    # containers are rebound to NEW resolved containers; aliases share the new one
    assert ns["nested"] is not ns["box"].orig
    assert isinstance(ns["box"].orig[0], TaskFuture)
    assert ns["alias"] is ns["nested"]
    assert isinstance(ns["nested"][1], tuple) and isinstance(ns["nested"][1][1], dict)
    assert session.current_mode()[0] == mode
    summary = magics.last_run().summary()
    assert summary["inc"] == {"success": 9}
    assert summary["add"] == {"success": 1}


def test_last_expression_resolved_and_silenced(shell):
    assert run_cell(shell, "%%executor threads --no-table\ninc(41)") == 42
    assert run_cell(shell, "%%executor threads --no-table\n[inc(1), {'k': inc(2)}]") == [
        2,
        {"k": 3},
    ]
    assert run_cell(shell, "%%executor threads --no-table\ninc(41);") is None
    assert run_cell(shell, "%%executor threads --no-table\nz = inc(1)") is None


def test_cell_without_mode_uses_session_or_local(shell):
    run_cell(shell, "%%executor --no-table\nq = inc(1)")
    assert shell.user_ns["q"] == 2
    assert session.current_mode() == ("local", {})
    run_cell(shell, "%executor threads -n 2")
    executor = nbexec.current()
    run_cell(shell, "%%executor --no-table\nq = inc(2)")
    assert shell.user_ns["q"] == 3 and nbexec.current() is executor


def test_reuse_between_cells(shell):
    run_cell(shell, "%%executor threads -n 2 --no-table\nx = inc(1)")
    first = nbexec.current()
    run_cell(shell, "%%executor threads -n 2 --no-table\nx = inc(1)")
    assert nbexec.current() is first
    run_cell(shell, "%%executor threads --no-table\nx = inc(1)")  # an option left out means "any"
    assert nbexec.current() is first
    run_cell(shell, "%%executor threads -n 3 --no-table\nx = inc(1)")
    second = nbexec.current()
    assert second is not first and not first.started
    assert session.current_mode() == ("threads", {"workers": 3})
    run_cell(shell, "%%executor local --no-table\nx = inc(1)")
    assert nbexec.current() is not second and not second.started
    assert shell.user_ns["x"] == 2


def test_line_magic_switches_even_when_matching(shell):
    run_cell(shell, "%executor threads -n 2")
    first = nbexec.current()
    run_cell(shell, "%executor threads -n 2")
    assert nbexec.current() is not first and not first.started


# --- bad lines --------------------------------------------------------------------------------

BAD_LINES = {
    "dsk": ["unknown mode 'dsk'", "local, sync, threads, processes, dask"],
    "threads -n abc": ["--workers", "whole number", "'abc'"],
    "threads -n": ["--workers", "expected one argument"],
    "dask --timeout soon": ["--timeout", "number of seconds"],
    "dask --cluster-kwargs '{bad'": ["--cluster-kwargs", "JSON object"],
    "dask --cluster-kwargs '[1, 2]'": ["--cluster-kwargs", "JSON object"],
    "threads --bogus": ["unrecognized arguments: --bogus", "--workers", "--cluster-class"],
    "dask --adapt 1": ["--adapt", "expected 2 arguments"],
    "local -n 2": ["'workers' does not fit mode 'local'", "no options"],
    "threads --address tcp://127.0.0.1:1": ["does not fit mode 'threads'", "workers"],
    "dask --address tcp://127.0.0.1:1 -n 2": ["workers", "--address"],
    "dask --cluster-class os.path.join": [
        "not a distributed.deploy.Cluster subclass",
        "distributed.LocalCluster",
    ],
    "dask --cluster-class collections.OrderedDict": ["not a distributed.deploy.Cluster"],
    "dask --cluster-class no_such_module.Cluster": ["'no_such_module.Cluster'", "LocalCluster"],
    "dask --adapt 3 1": ["larger than maximum"],
    "threads dask": ["unrecognized arguments: dask"],
    "threads -n 0": ["workers must be a whole number >= 1"],
    "dask --memory-limit lots": ["memory_limit", "2GiB"],
    "dask --tls-ca-file /nonexistent": ["tls_cert", "tls_key"],
}


@pytest.mark.parametrize("line", list(BAD_LINES))
@pytest.mark.parametrize("form", ["cell", "line"])
def test_bad_line_is_usage_error_and_session_unchanged(shell, line, form):
    run_cell(shell, "%executor threads -n 2")
    before, before_mode = nbexec.current(), session.current_mode()
    shell.user_ns.pop("never", None)
    code = f"%%executor {line}\nnever = inc(1)" if form == "cell" else f"%executor {line}"
    with pytest.raises(UsageError) as info:
        run_cell(shell, code)
    message = str(info.value)
    for part in BAD_LINES[line]:
        assert part in message
    assert nbexec.current() is before and before.started
    assert session.current_mode() == before_mode
    assert "never" not in shell.user_ns


def test_line_is_never_expanded_or_evaluated(shell, tmp_path):
    marker = tmp_path / "evaluated"
    shell.user_ns["n"] = 3
    code = f"%%executor threads --cluster-kwargs '{{open({str(marker)!r}, \"w\")}}'\nx = 1"
    with pytest.raises(UsageError, match="JSON object"):
        run_cell(shell, code)
    assert not marker.exists()
    with pytest.raises(UsageError, match="whole number"):
        run_cell(shell, "%executor threads -n $n")
    with pytest.raises(UsageError, match="whole number"):
        run_cell(shell, "%executor threads -n {n}")


def test_display_options_belong_to_the_cell_magic(shell):
    with pytest.raises(UsageError, match="--no-table go with the cell magic"):
        run_cell(shell, "%executor threads --no-table")
    with pytest.raises(UsageError, match="name a mode"):
        run_cell(shell, "%executor -n 2")
    with pytest.raises(UsageError, match="takes no options"):
        run_cell(shell, "%executor status -n 2")


def test_syntax_error_starts_nothing(shell):
    result = shell.run_cell("%%executor threads -n 2 --no-table\nx = (")
    assert isinstance(result.error_in_exec, SyntaxError)
    assert nbexec.current() is None


# --- failures ---------------------------------------------------------------------------------

FAIL_CELL = """
good = inc(1)
bad = boom(2)
after_bad = inc(bad)
pair = [inc(10), boom(3)]
"""


@pytest.mark.parametrize("mode", list(MODES))
def test_failed_task_raises_and_keeps_successful_results(shell, mode, capsys):
    with pytest.raises(TaskFailed) as info:
        run_cell(shell, f"%%executor {MODES[mode]} --no-table\n{FAIL_CELL}")
    error = info.value
    assert error.task_name == "boom" and error.others == 1
    assert isinstance(error.__cause__, ValueError) and "bad value 2" in str(error.__cause__)
    ns = shell.user_ns
    assert ns["good"] == 2
    assert isinstance(ns["bad"], TaskFuture) and ns["bad"].state == "failed"
    assert ns["after_bad"].state == "cancelled"
    assert ns["pair"][0] == 11 and isinstance(ns["pair"][1], TaskFuture)
    shown = capsys.readouterr().out
    assert "TaskFailed: task 'boom' failed: ValueError: bad value 2" in shown
    assert "ValueError: bad value 2" in shown
    # the session executor stays usable
    assert run_cell(shell, f"%%executor {MODES[mode]} --no-table\ninc(1)") == 2


@pytest.mark.parametrize("mode", ["local", "sync", "threads"])
def test_failure_traceback_shows_user_function_not_internals(shell, mode, capsys):
    shell.run_cell(f"%%executor {mode} --no-table\nbad = boom(5)")
    shown = capsys.readouterr().out
    tb = shown[shown.index("Traceback") :]
    assert 'raise ValueError(f"bad value {x}")' in tb
    assert "nbexec/core/run.py" not in tb and "nbexec/frontends/magics.py" not in tb
    assert "nbexec/executors" not in tb and "concurrent/futures" not in tb
    assert tb.rstrip().endswith("TaskFailed: task 'boom' failed: ValueError: bad value 5")


@pytest.mark.parametrize("mode", ["local", "threads"])
def test_error_in_cell_code_interrupts_tasks_and_propagates(shell, mode):
    sleep = 0 if mode == "local" else 5  # local runs tasks inline, before the error
    code = f"""%%executor {MODES[mode]} --no-table
import sys
import time
done = inc(1)
slow = nbexec.submit(time.sleep, {sleep})
raise KeyError('in the cell')
"""
    started = time.monotonic()
    with pytest.raises(KeyError, match="in the cell"):
        run_cell(shell, code)
    assert time.monotonic() - started < 4
    if mode == "local":  # ran inline before the error: resolved
        assert shell.user_ns["done"] == 2
    else:  # still running when the cell failed: interrupted
        assert shell.user_ns["slow"].state == "cancelled"
    assert run_cell(shell, f"%%executor {MODES[mode]} --no-table\ninc(2)") == 3


# --- dask collections -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["threads", "processes", "dask"])
def test_dask_collections_run_on_the_executor_and_count(shell, mode):
    code = f"""%%executor {MODES[mode]} --no-table
import dask, dask.array as da
total = da.ones(1000, chunks=100).sum().compute()
def square(x):
    return x * x
sq = dask.delayed(square, pure=True)(7).compute()
"""
    run_cell(shell, code)
    assert shell.user_ns["total"] == 1000 and shell.user_ns["sq"] == 49
    summary = magics.last_run().summary()
    assert summary["sum"] == {"success": 10}  # rows by task prefix
    assert summary.get("square") == {"success": 1}


# --- status, stop, panel, override ------------------------------------------------------------


def test_status_and_stop(shell, capsys):
    run_cell(shell, "%executor status")
    assert "executor: none" in capsys.readouterr().out
    run_cell(shell, "%executor threads -n 2")
    capsys.readouterr()
    run_cell(shell, "%executor status")
    out = capsys.readouterr().out
    assert "executor: threads --workers 2" in out
    assert "workers: 2" in out and "threads: 2" in out
    executor = nbexec.current()
    run_cell(shell, "%executor stop")
    assert nbexec.current() is None and not executor.started
    run_cell(shell, "%executor stop")  # stopping nothing is fine


def test_status_shows_dashboard_for_dask(shell, capsys):
    run_cell(shell, "%executor dask --no-processes -n 1")
    capsys.readouterr()
    run_cell(shell, "%executor status")
    out = capsys.readouterr().out
    assert "executor: dask" in out and "workers: 1" in out
    assert "dashboard: http://" in out


def test_bare_magic_shows_the_panel_or_status(shell, capsys):
    run_cell(shell, "%executor threads -n 2")
    capsys.readouterr()
    run_cell(shell, "%executor")
    out = capsys.readouterr().out
    assert out.strip()  # the panel's text/plain, or the status text without widgets


def test_override_replaces_the_notebooks_mode_silently(shell, monkeypatch, capsys):
    code = "%%executor {} --no-table\nv = [inc(i) for i in range(3)]\nv"
    plain = run_cell(shell, code.format("threads -n 2"))
    plain_out = capsys.readouterr().out
    session.stop()
    monkeypatch.setenv(session.ENV_VAR, "local")
    # even a line naming a cluster class this machine lacks: the override replaces it
    forced = run_cell(shell, code.format("dask --cluster-class no_such_module.Cluster -n 4"))
    forced_out = capsys.readouterr().out
    assert forced == plain == [1, 2, 3]
    assert session.current_mode() == ("local", {})
    assert forced_out == plain_out
    run_cell(shell, "%executor status")
    assert "override: NBEXEC_EXECUTOR='local'" in capsys.readouterr().out
    # the override also applies to the line magic, and bad syntax is still refused
    run_cell(shell, "%executor threads -n 2")
    assert session.current_mode() == ("local", {})
    with pytest.raises(UsageError):
        run_cell(shell, "%executor threads -n x")


def test_without_ipywidgets_everything_degrades_to_text(shell, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    assert run_cell(shell, "%%executor threads -n 2\n[inc(1), inc(2)]") == [2, 3]
    out = capsys.readouterr().out
    assert "inc" in out and "2 success" in out  # the run's summary as text
    run_cell(shell, "%executor")  # the panel's text/HTML fallback; nothing raises
    assert capsys.readouterr().out.strip()
    run_cell(shell, "%executor status")
    assert "executor: threads --workers 2" in capsys.readouterr().out
