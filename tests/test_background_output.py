"""What a background cell's tasks print goes under that cell, never under another one.

A real kernel (jupyter_client) with ipykernel capturing its file descriptors as under Jupyter
(``PYTEST_CURRENT_TEST`` unset), in threads, processes and dask: a background cell whose tasks
print slowly, then a plain cell that prints while they go on. Every iopub stream message says,
through its parent header, which cell it belongs to.
"""

from __future__ import annotations

import pytest
from background_helpers import LINES, ok
from kernel_helpers import running_kernel

pytestmark = [pytest.mark.slow]

SETUP = """%load_ext nbexec
import nbexec, sys, time

@nbexec.task
def ticking(name, n=4, every=0.4):
    for i in range(n):  # one write per line: two threads' print() calls may interleave
        sys.stdout.write(f"tick {name} {i}\\n")
        time.sleep(every)
    sys.stderr.write(f"tock {name}\\n")
    return name
"""


def streams(messages: list[dict]) -> list[tuple[str, str]]:
    """(parent msg_id, text) of each stream message."""
    return [
        (m["parent_header"].get("msg_id"), m["content"]["text"])
        for m in messages
        if m["msg_type"] == "stream"
    ]


@pytest.mark.parametrize("mode", list(LINES))
def test_background_prints_go_under_the_background_cell(mode):
    with running_kernel(unset=("NBEXEC_EXECUTOR", "PYTEST_CURRENT_TEST")) as kernel:
        ok(kernel.execute(SETUP))
        ok(kernel.execute(f"%executor {LINES[mode]}", timeout=120))
        background = ok(
            kernel.execute(
                f"%%executor {LINES[mode]} --background\nt = [ticking('a'), ticking('b')]"
            )
        )
        plain = ok(
            kernel.execute("print('plain 1', flush=True); time.sleep(2.5); print('plain 2')")
        )
        waited = ok(kernel.execute("%executor wait", timeout=60))
        after = ok(kernel.execute("print(t)"))
        kernel.gather(1.5)  # Dask sends what a task printed a moment after its result

        everything = streams(
            background.messages + plain.messages + waited.messages + after.messages
            + kernel.others
        )  # fmt: skip
        task_lines = [
            (parent, line)
            for parent, text in everything
            for line in text.splitlines()
            if line.startswith(("tick", "tock"))
        ]
        print(f"\n{mode}: task lines by cell:", task_lines)
        assert sorted(line for _, line in task_lines) == sorted(
            [f"tick {n} {i}" for n in "ab" for i in range(4)] + ["tock a", "tock b"]
        )
        assert {parent for parent, _ in task_lines} == {background.msg_id}
        if mode == "threads":  # shown as written: what went to stderr is shown as stderr
            by_stream = {
                line: m["content"]["name"]
                for m in background.messages + plain.messages + kernel.others
                if m["msg_type"] == "stream"
                for line in m["content"]["text"].splitlines()
                if line.startswith(("tick", "tock"))
            }
            assert {by_stream["tock a"], by_stream["tock b"]} == {"stderr"}, by_stream
            assert {by_stream[f"tick a {i}"] for i in range(4)} == {"stdout"}, by_stream
        assert "".join(text for _, text in streams(plain.messages)) == "plain 1\nplain 2\n"
        assert streams(waited.messages) == []
        assert "".join(text for _, text in streams(after.messages)) == "['a', 'b']\n"
