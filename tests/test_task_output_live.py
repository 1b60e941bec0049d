"""What a task prints reaches its background cell while the task runs, in processes and dask.

A real kernel (jupyter_client, file descriptors captured as under Jupyter): a background cell's
task prints a line to stdout and one to stderr, then waits for a gate file. Both lines must reach
the cell's iopub stream (each on its own stream) while the gate is still closed, i.e. before the
task can end; afterwards ``TaskFuture.output`` holds everything the task printed. Dask runs on a
LocalCluster with worker processes, and on CLI workers that cannot import nbexec.

Without a kernel: a task writing many lines to stdout and stderr reaches the run's writer in a
few parts, every line once, in order, each on its stream.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest
from background_helpers import LINES, ok
from kernel_helpers import Kernel, running_kernel

import nbexec
from nbexec.core.run import Run
from nbexec.runtime._taskcall import STREAM_ATTR

# Like a notebook's functions, this module's travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SETUP = """%load_ext nbexec
import nbexec, os, sys, time

@nbexec.task
def gated(name, gate):
    sys.stdout.write(f"live {name}\\n")
    sys.stderr.write(f"warn {name}\\n")
    while not os.path.exists(gate):
        time.sleep(0.05)
    print(f"done {name}")
    return name
"""

#: Seconds the test waits for the task's first lines while the task cannot end.
LIVE_WITHIN = 20


def _task_lines(messages: list[dict], parent: str) -> dict[str, str]:
    """Task line -> name of the stream that carried it, under the cell ``parent``."""
    return {
        line: m["content"]["name"]
        for m in messages
        if m["msg_type"] == "stream" and m["parent_header"].get("msg_id") == parent
        for line in m["content"]["text"].splitlines()
        if line.startswith(("live", "warn", "done"))
    }


def _check_live(kernel: Kernel, line: str, gate: Path) -> None:
    ok(kernel.execute(SETUP))
    ok(kernel.execute(f"%executor {line}", timeout=120))
    background = ok(
        kernel.execute(f"%%executor {line} --background\nt = gated('a', {str(gate)!r})")
    )
    seen: dict[str, str] = {}
    deadline = time.monotonic() + LIVE_WITHIN
    while time.monotonic() < deadline and not {"live a", "warn a"} <= seen.keys():
        kernel.gather(0.2)
        seen = _task_lines(background.messages + kernel.others, background.msg_id)
    assert not gate.exists()  # the task cannot have ended: what it printed came while it ran
    assert seen == {"live a": "stdout", "warn a": "stderr"}, (
        f"within {LIVE_WITHIN} s of the task's start the cell showed {seen}"
    )

    gate.write_text("")
    ok(kernel.execute("%executor wait", timeout=60))
    check = ok(
        kernel.execute(
            "f = nbexec.runs()[-1].futures[0]\n"
            "deadline = time.monotonic() + 10\n"  # Dask: the whole text may follow the result
            "while 'done a' not in f.output and time.monotonic() < deadline:\n"
            "    time.sleep(0.05)\n"
            "print(repr(f.output))"
        )
    )
    assert check.streams.get("stdout", "").strip() == repr("live a\nwarn a\ndone a\n")
    kernel.gather(0.5)
    lines = _task_lines(background.messages + kernel.others, background.msg_id)
    assert lines == {"live a": "stdout", "warn a": "stderr", "done a": "stdout"}, lines


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["processes", "dask"])
def test_prints_reach_the_cell_while_the_task_runs(mode, tmp_path):
    with running_kernel(unset=("NBEXEC_EXECUTOR", "PYTEST_CURRENT_TEST")) as kernel:
        _check_live(kernel, LINES[mode], tmp_path / "gate")


@pytest.mark.slow
def test_prints_reach_the_cell_from_workers_without_nbexec(dask_cli_cluster, tmp_path):
    with running_kernel(unset=("NBEXEC_EXECUTOR", "PYTEST_CURRENT_TEST")) as kernel:
        _check_live(kernel, f"dask --address {dask_cli_cluster.address}", tmp_path / "gate")


def spill(lines: int) -> int:
    for i in range(lines):  # every 50th line to stderr
        (sys.stderr if i % 50 == 49 else sys.stdout).write(f"line {i}\n")
        time.sleep(0.002)
    return lines


@pytest.mark.parametrize("mode", ["processes", "dask"])
def test_many_prints_travel_in_few_parts_each_line_once(executors, mode):
    n = 300
    shown: list[tuple[str | None, str]] = []

    def writer(text: str) -> None:
        shown.append((getattr(threading.current_thread(), STREAM_ATTR, None), text))

    with Run(executors(mode)) as run:
        run.route_output(writer)
        future = nbexec.submit(spill, n)
    lines = [f"line {i}\n" for i in range(n)]
    everything = "".join(lines)
    deadline = time.monotonic() + 10  # Dask: the last part may follow the result
    while future.output != everything and time.monotonic() < deadline:
        time.sleep(0.02)
    assert future.output == everything
    while len("".join(t for _, t in shown)) < len(everything) and time.monotonic() < deadline:
        time.sleep(0.02)
    by_stream = {
        name: "".join(t for s, t in shown if (s or "stdout") == name)
        for name in ("stdout", "stderr")
    }
    assert by_stream["stderr"] == "".join(lines[49::50])
    assert by_stream["stdout"] == "".join(x for i, x in enumerate(lines) if i % 50 != 49)
    print(f"{mode}: {n} writes shown in {len(shown)} pieces")
    assert len(shown) < n / 3, "output went on about once per write, not in parts"
