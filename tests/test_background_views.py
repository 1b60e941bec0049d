"""A user's checks of background runs in a real kernel: ``run.table`` after a page reload is live
while the run goes on (static once it ended), and ``%executor retry`` after a background run
re-runs only the failed task and what depended on it, rebinding the names."""

from __future__ import annotations

import os

import pytest
from background_helpers import ok
from kernel_helpers import Cell, running_kernel

pytestmark = [pytest.mark.slow]

WIDGET = "application/vnd.jupyter.widget-view+json"

SETUP = """%load_ext nbexec
import nbexec, os, time

@nbexec.task
def step(x, seconds=0.5):
    time.sleep(seconds)
    open(os.path.join(CALLS, f"step-{x}-{os.urandom(6).hex()}"), "w").close()
    if os.path.exists(os.path.join(CALLS, f"bad-{x}")):
        raise ValueError(f"bad input {x}")
    return x

@nbexec.task
def plus(v):
    open(os.path.join(CALLS, f"plus-{v}-{os.urandom(6).hex()}"), "w").close()
    return v + 100
"""


def text(cell: Cell) -> str:
    return cell.displays[-1].get("text/plain", "") if cell.displays else ""


def calls(path, prefix: str) -> int:
    return len([n for n in os.listdir(path) if n.startswith(prefix)])


def test_run_table_is_live_while_the_run_goes_on(tmp_path):
    with running_kernel() as kernel:
        ok(kernel.execute(f"CALLS = {str(tmp_path)!r}"))
        ok(kernel.execute(SETUP))
        ok(kernel.execute("%executor threads -n 1", timeout=60))
        ok(kernel.execute("%%executor --background\nparts = [step(i, 1.0) for i in range(3)]"))
        shown = ok(kernel.execute("nbexec.runs()[-1].table"))  # as after a page reload
        assert [WIDGET in d for d in shown.displays] == [True], shown.displays
        assert not shown.of_type("execute_result")
        opened = {m["content"]["comm_id"] for m in shown.of_type("comm_open")}
        waited = ok(kernel.execute("%executor wait", timeout=60))
        later = [
            m for m in waited.messages + kernel.others
            if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] in opened
        ]  # fmt: skip
        assert later, "the table shown from run.table was not updated after its cell returned"
        static = ok(kernel.execute("nbexec.runs()[-1].table"))  # the run ended: a static table
        assert [m["msg_type"] for m in static.of_type("execute_result", "display_data")] == [
            "execute_result"
        ]
        assert "3 success" in text(static)


def test_retry_after_a_background_run_reruns_only_what_failed_and_rebinds(tmp_path):
    with running_kernel() as kernel:
        ok(kernel.execute(f"CALLS = {str(tmp_path)!r}"))
        ok(kernel.execute(SETUP))
        (tmp_path / "bad-2").touch()
        ok(kernel.execute("%executor threads -n 2", timeout=60))
        ok(
            kernel.execute(
                "%%executor --background\nparts = [step(i) for i in range(4)]\n"
                "broken = plus(parts[2])\nfine = plus(parts[1])"
            )
        )
        failed = kernel.execute("%executor wait", timeout=60)
        assert failed.ename == "TaskFailed" and "bad input 2" in failed.error_text
        assert calls(tmp_path, "step-") == 4 and calls(tmp_path, "plus-") == 1
        (tmp_path / "bad-2").unlink()
        retried = ok(kernel.execute("%executor retry", timeout=60))
        assert "1 success" in "".join(d.get("text/plain", "") for d in retried.displays)
        assert text(ok(kernel.execute("parts, broken, fine"))) == "([0, 1, 2, 3], 102, 101)"
        # only the failed step and the task that depended on it ran again
        assert calls(tmp_path, "step-2-") == 2 and calls(tmp_path, "step-") == 5
        assert calls(tmp_path, "plus-2-") == 1 and calls(tmp_path, "plus-") == 2
