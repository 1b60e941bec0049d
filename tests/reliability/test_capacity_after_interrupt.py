"""After an interrupt, the next cell has the executor's full capacity, whatever the interrupted
tasks were blocked in (``time.sleep`` in C), and ``%executor stop`` / a mode switch return at once.

A real Jupyter kernel per mode, two workers: cell 1 runs two ``time.sleep(300)`` tasks and is
interrupted (SIGINT to the process group, as Jupyter does); cell 2 runs two 1 s tasks, which must
finish together (both workers free), far sooner than the stuck sleeps. No interrupted task runs
another line (its marker file never appears). Then ``%executor stop`` returns quickly. The
figures are printed (``-s``) for the README.
"""

from __future__ import annotations

import os
import time

import pytest
from kernel_helpers import Cell, running_kernel

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

LINES = {
    "threads": "threads -n 2",
    "processes": "processes -n 2",
    "dask": "dask -n 2 --threads-per-worker 1 --processes",
    "dask-in-process": "dask -n 2 --threads-per-worker 1 --no-processes",
}
SETUP = """%load_ext nbexec
import nbexec, pathlib, time

@nbexec.task
def stuck(path):
    time.sleep(300)
    pathlib.Path(path).write_text("ran on after the interrupt")

@nbexec.task
def second(i):
    time.sleep(1)
    return i
"""
FIGURES: dict[str, tuple[float, float]] = {}


def ok(cell: Cell) -> Cell:
    assert cell.ok, cell.error_text or cell.reply
    return cell


@pytest.mark.parametrize("mode", list(LINES))
def test_full_capacity_after_interrupting_tasks_blocked_in_c(mode, tmp_path):
    line = LINES[mode]
    marker = tmp_path / "marker"
    with running_kernel() as kernel:
        ok(kernel.execute(SETUP))
        ok(kernel.execute(f"%%executor {line} --no-table\nw = second(0)", timeout=120))
        msg_id = kernel.submit(
            f"%%executor {line} --no-table\nout = [stuck({str(marker)!r}) for _ in range(2)]"
        )
        time.sleep(2.5)  # both tasks are inside time.sleep
        kernel.interrupt()
        cell = kernel.collect(msg_id, timeout=30)
        assert cell.ename == "KeyboardInterrupt", cell.error_text
        t0 = time.monotonic()
        ok(
            kernel.execute(
                f"%%executor {line} --no-table\na = second(1)\nb = second(2)", timeout=120
            )
        )
        capacity = time.monotonic() - t0
        nxt = ok(kernel.execute("a + b"))
        assert nxt.displays[-1]["text/plain"] == "3"
        # Two 1 s tasks in parallel; queued behind a 300 s sleep they would take minutes.
        assert capacity < 30, f"{mode}: the next cell took {capacity:.1f} s"
        t0 = time.monotonic()
        ok(kernel.execute("%executor stop", timeout=60))
        stop = time.monotonic() - t0
        assert stop < 30, f"{mode}: %executor stop took {stop:.1f} s"
        assert not marker.exists(), "an interrupted task ran on"
        FIGURES[mode] = (capacity, stop)
        print(f"\n{mode}: next cell (two 1 s tasks) {capacity:.2f} s, %executor stop {stop:.2f} s")


@pytest.mark.parametrize("target", ["sync", "dask -n 1 --no-processes"])
def test_mode_switch_after_interrupt_returns(target):
    with running_kernel() as kernel:
        ok(kernel.execute(SETUP))
        msg_id = kernel.submit(
            "%%executor threads -n 2 --no-table\nout = [stuck(os.devnull) for _ in range(2)]".replace(
                "os.devnull", repr(os.devnull)
            )
        )
        time.sleep(2.5)
        kernel.interrupt()
        assert kernel.collect(msg_id, timeout=30).ename == "KeyboardInterrupt"
        t0 = time.monotonic()
        ok(kernel.execute(f"%%executor {target} --no-table\nsecond(5)", timeout=120))
        took = time.monotonic() - t0
        print(f"\nswitch threads -> {target} after an interrupt: {took:.2f} s")
        assert took < 60
