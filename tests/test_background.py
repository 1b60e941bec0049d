"""``%%executor MODE --background`` through a real Jupyter kernel (threads, processes, dask).

The background cell returns at once, a plain cell runs while its tasks go on, names become
values at the first cell after the run ended or at ``%executor wait``; cancel and timeouts free
the workers; output is kept per task. Times are printed, not asserted beyond "well under".
"""

from __future__ import annotations

import os
import time

import pytest
from background_helpers import LINES, ok
from kernel_helpers import Cell, running_kernel

pytestmark = [pytest.mark.slow]

SETUP = """%load_ext nbexec
import nbexec, os, time

@nbexec.task
def slow(x, seconds=2.0):
    print(f"working on {x}")
    time.sleep(seconds)
    open(os.path.join(CALLS, f"slow-{x}-{os.urandom(6).hex()}"), "w").close()
    return x * 2

def busy(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds

spin = nbexec.task(busy, name="spin")
limited = nbexec.task(busy, name="limited", timeout=0.5)
"""


def text(cell: Cell) -> str:
    return cell.displays[-1]["text/plain"] if cell.displays else cell.streams.get("stdout", "")


@pytest.mark.parametrize("mode", list(LINES))
def test_background_cell_returns_at_once_and_names_become_values(mode, tmp_path):
    with running_kernel() as kernel:
        ok(kernel.execute(f"CALLS = {str(tmp_path)!r}"))
        ok(kernel.execute(SETUP))
        ok(kernel.execute(f"%executor {LINES[mode]}", timeout=120))
        ok(kernel.execute(f"%%executor {LINES[mode]} --background\nwarm = spin(0.01)", timeout=60))
        ok(kernel.execute("%executor wait", timeout=60))

        t0 = time.monotonic()
        msg_id = kernel.submit(
            f"%%executor {LINES[mode]} --background\na = slow(1)\nb = [slow(2), slow(3, 1.0)]"
        )
        cell = ok(kernel.collect(msg_id, timeout=60))
        returned = cell.reply_time - t0
        plain = ok(kernel.execute("1 + 1"))
        assert text(plain) == "2"
        meanwhile = ok(kernel.execute("type(a).__name__, nbexec.runs()[-1].summary()"))
        assert "TaskFuture" in text(meanwhile) and "'success': 3" not in text(meanwhile)
        print(f"\n{mode}: background cell returned after {returned:.3f} s")
        assert returned < 1.0
        ok(kernel.execute("time.sleep(4)", timeout=30))  # the run ends meanwhile
        # pre_run_cell rebinds the names before the next cell runs
        values = ok(kernel.execute("a, b, slow.__class__.__name__"))
        assert text(values) == "(2, [4, 6], 'Task')"
        assert len([n for n in os.listdir(tmp_path) if n.startswith("slow-")]) == 3

        ok(kernel.execute(f"%%executor {LINES[mode]} --background\nc = slow(5)"))
        waited = ok(kernel.execute("%executor wait", timeout=60))
        assert "1 success" in "".join(d.get("text/plain", "") for d in waited.displays)
        assert text(ok(kernel.execute("c"))) == "10"
        listing = ok(kernel.execute("%executor runs")).streams["stdout"]
        assert listing.count("finished") >= 3 and "c = slow(5)" in listing


@pytest.mark.parametrize("mode", list(LINES))
def test_background_cancel_timeout_and_output_in_a_kernel(mode, tmp_path):
    with running_kernel() as kernel:
        ok(kernel.execute(f"CALLS = {str(tmp_path)!r}"))
        ok(kernel.execute(SETUP))
        ok(kernel.execute(f"%executor {LINES[mode]}", timeout=120))
        ok(kernel.execute(f"%%executor {LINES[mode]} --background\nwarm = spin(0.01)", timeout=60))
        ok(kernel.execute("%executor wait", timeout=60))
        ok(
            kernel.execute(
                f"%%executor {LINES[mode]} --background\nlong = spin(60)\nshort = limited(60)\n"
                "said = slow(7, 0.1)"
            )
        )
        ok(kernel.execute("while long.state != 'running': time.sleep(0.01)", timeout=30))
        ok(kernel.execute("t0 = time.monotonic(); long.cancel()"))
        cell = kernel.execute("%executor wait", timeout=60)
        assert cell.ename == "TaskFailed" and "timeout of 0.5 s" in cell.error_text
        freed = float(text(ok(kernel.execute("round(time.monotonic() - t0, 3)"))))
        print(f"\n{mode}: cancel + 0.5 s timeout -> run ended {freed:.3f} s after cancel()")
        assert freed < 10
        assert text(ok(kernel.execute("long.state, short.state, said"))) == (
            "('cancelled', 'failed', 14)"
        )
        printed = ok(kernel.execute("nbexec.runs()[-1].futures[-1].output"))
        assert text(printed) == "'working on 7\\n'"
        # the workers are free: a full-width run finishes at once
        ok(kernel.execute(f"%%executor {LINES[mode]}\nfree = [spin(0.01) for _ in range(4)]"))
