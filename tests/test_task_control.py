"""Task control in every mode: per-task output, timeouts, cancelling one task."""

from __future__ import annotations

import sys
import time

import cloudpickle
import pytest

import nbexec
from nbexec.executors.base import Executor
from nbexec.modes import executor_for
from nbexec.render import render_html
from nbexec.run import Run

# Like a notebook's functions, this module's travel by value: remote workers cannot import it.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

MODES = ["local", "sync", "threads", "processes", "dask", "dask-remote"]


@pytest.fixture(scope="module")
def executors(request):
    """One started executor per mode, shared by the module's tests."""
    started: dict[str, Executor] = {}
    stacks = []

    def get(mode: str) -> Executor:
        if mode not in started:
            if mode == "dask":
                ex = executor_for("dask", workers=2, threads_per_worker=1, processes=False)
            elif mode == "dask-remote":
                cluster = request.getfixturevalue("dask_cli_cluster")
                ex = executor_for("dask", address=cluster.address)
            elif mode in ("threads", "processes"):
                ex = executor_for(mode, workers=2)
            else:
                ex = executor_for(mode)
            cm = ex.start()
            cm.__enter__()
            stacks.append(cm)
            started[mode] = ex
        return started[mode]

    yield get
    for cm in reversed(stacks):
        cm.__exit__(None, None, None)


@nbexec.task
def chatty(x):
    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    if x == 3:
        raise ValueError(f"bad {x}")
    return x


@nbexec.task(retries=1)
def chatty_retried(x):
    print(f"try {x}")
    return x


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("mode", MODES)
def test_output_is_kept_per_task_and_shown_in_failures(executors, mode, capfd):
    with pytest.raises(nbexec.TaskFailed):
        with Run(executors(mode)) as run:
            futures = [chatty(i) for i in range(4)]
            mapped = nbexec.map(chatty_retried, [7, 8])
    # Remote output arrives with the task's events, a moment after its result.
    assert _wait_for(lambda: all(f.output for f in futures + mapped)), [f.output for f in futures]
    for i, f in enumerate(futures):
        assert f.output == f"out {i}\nerr {i}\n"
    assert [f.output for f in mapped] == ["try 7\n", "try 8\n"]
    failure = run.snapshot().failures[0]
    assert failure.output == "out 3\nerr 3"
    assert "out 3" in render_html(run.snapshot())
    if mode in ("local", "sync", "threads"):  # printing still reaches the cell's streams
        captured = capfd.readouterr()
        assert "out 2" in captured.out and "err 2" in captured.err


def test_output_is_cut_to_its_tail(executors):
    from nbexec._taskcall import MAX_OUTPUT

    @nbexec.task
    def loud():
        for _ in range(3000):
            print("x" * 99)

    with Run(executors("threads")):
        f = loud()
    assert f.output.startswith("[... ") and len(f.output) < MAX_OUTPUT + 100
    assert f.output.endswith("x" * 99 + "\n")
