"""The kernel's runs (``nbexec.runs()``) and ``Run.retry()`` in every mode; runs keep no results."""

from __future__ import annotations

import gc
import os
import sys
import uuid
import weakref

import cloudpickle
import pytest
from fixtures_modes import MODES

import nbexec
from nbexec.core import history
from nbexec.core.run import Run

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _calls(directory) -> list[str]:
    return sorted(name.split("@")[0] for name in os.listdir(directory) if "@" in name)


@pytest.mark.parametrize("mode", MODES)
def test_retry_reruns_only_failed_and_cancelled_tasks(executors, mode, tmp_path):
    d = str(tmp_path)

    @nbexec.task
    def load(x):
        open(os.path.join(d, f"load-{x}@{uuid.uuid4().hex}"), "w").close()
        if x in (2, 4) and not os.path.exists(os.path.join(d, "fixed")):
            raise ValueError(f"flaky {x}")
        return x * 10

    @nbexec.task
    def combine(a, b):
        open(os.path.join(d, f"combine-{a}-{b}@{uuid.uuid4().hex}"), "w").close()
        return a + b

    with pytest.raises(nbexec.TaskFailed):
        with Run(executors(mode)) as run:
            loads = [load(i) for i in range(5)]
            both = combine(loads[1], loads[2])
            mapped = nbexec.map(load, [4, 5])
    assert run in nbexec.runs()
    assert run.summary() == {"load": {"success": 4, "failed": 3}, "combine": {"cancelled": 1}}
    first = _calls(d)
    assert first == ["load-0", "load-1", "load-2", "load-3", "load-4", "load-4", "load-5"]

    open(os.path.join(d, "fixed"), "w").close()
    new = run.retry()
    reran = _calls(d)
    for name in first:
        reran.remove(name)
    assert sorted(reran) == ["combine-10-20", "load-2", "load-4", "load-4"]
    assert new.summary() == {"load": {"success": 3}, "combine": {"success": 1}}
    assert nbexec.runs()[-1] is new
    assert history.rebind_retried(new, [loads, both, mapped]) == [[0, 10, 20, 30, 40], 30, [40, 50]]
    assert new.retry().summary() == {}  # nothing left to retry


class Blob:
    def __init__(self) -> None:
        self.data = bytearray(1000)


def test_finished_runs_keep_no_results(executors):
    @nbexec.task
    def big(x):
        if x == 0:
            raise ValueError("no")
        return Blob()

    refs = []
    for mode in ("local", "sync", "threads"):
        with pytest.raises(nbexec.TaskFailed):
            with Run(executors(mode)) as run:
                values = [big(i) for i in range(3)]
        refs.append(weakref.ref(values[1].result()))
        refs.append(weakref.ref(run))
        del run, values
    nbexec.runs()
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)
    light = nbexec.runs()[-1]
    assert light.summary() == {"big": {"success": 2, "failed": 1}}
    assert [f.state for f in light.futures] == ["failed"]
    assert "big" in repr(light.table)
    with pytest.raises(nbexec.TaskFailed):  # it fails again, in a new run
        light.retry()
    assert nbexec.runs()[-1].summary() == {"big": {"failed": 1}}


def test_runs_are_listed_oldest_first_and_capped(executors, monkeypatch):
    monkeypatch.setattr(history, "MAX_RUNS", 3)
    made = []
    for _ in range(5):
        with Run(executors("local")) as run:
            pass
        made.append(run)
    assert nbexec.runs() == made[-3:]
    info = history.describe(made[-1])
    assert info["mode"] == "local" and info["state"] == "finished" and info["counts"] == {}


# --- %executor runs / show / retry in an IPython shell ------------------------------------------

CELL_TASKS = """
import os, nbexec
@nbexec.task
def flaky(x):
    open(os.path.join(CALLS, f"flaky-{x}@{os.urandom(8).hex()}"), "w").close()
    if x % 2 and not os.path.exists(os.path.join(CALLS, "fixed")):
        raise ValueError(f"odd {x}")
    return x * 10

@nbexec.task
def total(values):
    return sum(values)
"""


@pytest.fixture
def shell(clean_session, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("colors", "nocolor")
    sh.run_line_magic("load_ext", "nbexec")
    sh.user_ns["CALLS"] = str(tmp_path)
    assert sh.run_cell(CELL_TASKS).success
    yield sh


@pytest.mark.parametrize("mode", ["local", "threads", "processes"])
def test_magic_retry_reruns_failed_tasks_and_rebinds_names(shell, mode, tmp_path, capsys):
    result = shell.run_cell(
        f"%%executor {mode}\nvalues = [flaky(i) for i in range(4)]\ns = total(values)\nfirst = values[0]"
    )
    assert isinstance(result.error_in_exec, nbexec.TaskFailed)
    ns = shell.user_ns
    assert ns["first"] == 0 and ns["values"][0] == 0 and ns["values"][2] == 20
    assert isinstance(ns["values"][1], nbexec.TaskFuture) and isinstance(ns["s"], nbexec.TaskFuture)
    assert len(_calls(tmp_path)) == 4
    capsys.readouterr()
    assert shell.run_cell("%executor runs").success
    listing = capsys.readouterr().out
    assert f"{mode}" in listing and "failed" in listing and "values = [flaky(i)" in listing

    open(tmp_path / "fixed", "w").close()
    assert shell.run_cell("%executor retry").success
    assert ns["values"] == [0, 10, 20, 30] and ns["s"] == 60 and ns["first"] == 0
    assert sorted(_calls(tmp_path)) == sorted(["flaky-0", "flaky-1", "flaky-2", "flaky-3",
                                               "flaky-1", "flaky-3"])  # fmt: skip
    assert nbexec.runs()[-1].summary() == {"flaky": {"success": 2}, "total": {"success": 1}}
    capsys.readouterr()
    assert shell.run_cell("%executor retry").success
    assert "nothing to retry" in capsys.readouterr().out
    assert shell.run_cell("%executor show").success
    assert shell.run_cell("%executor show 1").success


def test_magic_run_commands_refuse_bad_lines(shell):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="takes a run number"):
        shell.run_line_magic("executor", "show 0")
    with pytest.raises(UsageError, match="takes no options"):
        shell.run_line_magic("executor", "runs 3")
