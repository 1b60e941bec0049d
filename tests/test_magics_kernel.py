"""``%%executor`` through a real Jupyter kernel: interrupts in every mode, and what a cell sends."""

from __future__ import annotations

import os
import time

import pytest
from kernel_helpers import Cell, running_kernel

from nbexec.testing import sanitize

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

LINES = {
    "local": "local",
    "sync": "sync",
    "threads": "threads -n 2",
    "processes": "processes -n 2",
    "dask": "dask -n 2 --processes --threads-per-worker 1",
}
TASK_SECONDS = 3

SETUP = """%load_ext nbexec
import nbexec, pathlib, time

@nbexec.task
def inc(x):
    return x + 1

@nbexec.task
def slow(directory, i):
    time.sleep(SECONDS)
    pathlib.Path(directory, f"effect-{i}").write_text("ran on")
    return i
""".replace("SECONDS", str(TASK_SECONDS))


def ok(cell: Cell) -> Cell:
    assert cell.ok, cell.error_text or cell.reply
    return cell


@pytest.fixture(scope="module", params=list(LINES))
def mode_kernel(request):
    with running_kernel() as kernel:
        ok(kernel.execute(SETUP))
        ok(kernel.execute(f"%%executor {LINES[request.param]} --no-table\nw = inc(1)", timeout=120))
        yield request.param, kernel
        ok(kernel.execute("%executor stop", timeout=60))


@pytest.mark.parametrize("how", ["process group", "kernel pid"])
def test_interrupt_reaches_the_user_and_stops_tasks(mode_kernel, how, tmp_path):
    mode, kernel = mode_kernel
    before = ok(kernel.execute("id(nbexec.current())")).displays[-1]["text/plain"]
    msg_id = kernel.submit(
        f"%%executor {LINES[mode]} --no-table\nout = [slow({str(tmp_path)!r}, i) for i in range(4)]"
    )
    time.sleep(1.0)  # the tasks are running (or queued behind running ones)
    sent = time.monotonic()
    if how == "process group":
        kernel.interrupt()
    else:
        kernel.signal_kernel_only()
    cell = kernel.collect(msg_id, timeout=30)
    arrived = min(t for t in (cell.first_time("error"), cell.reply_time) if t is not None)
    print(f"interrupt latency {mode:10s} {how:14s} {arrived - sent:.2f} s")  # shown with -s
    assert cell.ename == "KeyboardInterrupt", cell.error_text or cell.reply
    assert arrived - sent < 2.0, f"{mode}/{how}: KeyboardInterrupt after {arrived - sent:.2f} s"
    assert not cell.of_type("stream"), cell.streams
    # No interrupted task goes on to have effects (and none is rerun, e.g. by a nanny).
    time.sleep(max(0.0, sent + TASK_SECONDS + 2.0 - time.monotonic()))
    assert sorted(os.listdir(tmp_path)) == []
    # The session executor is the same one and still works.
    after = ok(kernel.execute(f"%%executor {LINES[mode]} --no-table\n[inc(i) for i in range(3)]"))
    assert after.displays[-1]["text/plain"] == "[1, 2, 3]"
    assert not after.of_type("stream"), after.streams
    assert ok(kernel.execute("id(nbexec.current())")).displays[-1]["text/plain"] == before


# --- outputs ----------------------------------------------------------------------------------

OUTPUT_CELL = """%%executor {line}
values = [inc(i) for i in range(5)]
pairs = {{"a": inc(10), "b": (inc(20), 3)}}
values
"""
ALLOWED_MIME = {"text/plain", "text/html", "application/vnd.jupyter.widget-view+json"}


def _nbval_view(cell: Cell) -> list[tuple[str, ...]]:
    """What nbval compares: every output message except display updates, widget views excluded,
    with nbexec's sanitize file applied (as `--nbval-sanitize-with` does)."""
    view: list[tuple[str, ...]] = []
    for msg in cell.of_type("display_data", "execute_result", "stream", "error"):
        content = msg["content"]
        if msg["msg_type"] == "stream":
            view.append((content["name"], content["text"]))
        elif msg["msg_type"] == "error":
            view.append(("error", content["ename"]))
        else:
            data = content["data"]
            assert set(data) <= ALLOWED_MIME, sorted(data)
            view.append(
                (
                    msg["msg_type"],
                    sanitize(data.get("text/plain", "")),
                    sanitize(data.get("text/html", "")),
                )
            )
    return view


def _outputs(env: dict | None, lines: list[str]) -> dict[str, list]:
    out = {}
    with running_kernel(env=env) as kernel:
        ok(kernel.execute(SETUP))
        for line in lines:
            cell = ok(kernel.execute(OUTPUT_CELL.format(line=line), timeout=120))
            out[line] = _nbval_view(cell)
            assert ok(kernel.execute("values, pairs")).displays[-1]["text/plain"] == (
                "([1, 2, 3, 4, 5], {'a': 11, 'b': (21, 3)})"
            )
        stop = ok(kernel.execute("%executor stop", timeout=60))
        assert _nbval_view(stop) == []
    return out


def test_outputs_are_deterministic_across_modes_and_under_the_override():
    lines = ["local", "threads -n 2", "processes -n 2"]
    plain = _outputs(None, lines)
    forced = _outputs({"NBEXEC_EXECUTOR": "local"}, ["threads -n 2"])
    reference = plain["threads -n 2"]
    assert reference, "the cell sent no output at all"
    assert not [out[0] for out in reference if out[0] in ("stdout", "stderr", "error")]
    assert ("execute_result", "[1, 2, 3, 4, 5]", "") in reference
    for line in lines:
        assert plain[line] == reference, line
    assert forced["threads -n 2"] == reference
    # deterministic text: task names and counts, no times, ports, addresses or ids
    text = "\n".join(out[1] for out in reference)
    assert "inc" in text
    for forbidden in ("127.0.0.1", "tcp://", "0x", " ms", " s ", "µs"):
        assert forbidden not in text


def test_dask_cluster_cell_sends_nothing_on_stdout_or_stderr():
    with running_kernel() as kernel:
        ok(kernel.execute(SETUP))
        cells = [
            ok(kernel.execute(OUTPUT_CELL.format(line=LINES["dask"]), timeout=120)),
            ok(kernel.execute(OUTPUT_CELL.format(line=LINES["dask"]), timeout=120)),
            ok(kernel.execute("%executor threads", timeout=60)),  # closes the cluster
            ok(kernel.execute("import time; time.sleep(1.5)")),  # late worker/nanny output
        ]
        for cell in cells:
            assert not cell.of_type("stream", "error"), cell.streams
        first, second = (_nbval_view(c) for c in cells[:2])
        assert first == second and ("execute_result", "[1, 2, 3, 4, 5]", "") in first
