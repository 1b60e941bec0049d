"""Progress that matches the counts mid-run, in every mode: while tasks are held inside their
code (waiting for a gate file), the live table's "n/m done" and its bar agree with the state
counts, and the counts agree with what really ran (every mapped task counted from the start)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

import nbexec
from nbexec.core.render import STATE_COLORS, render_html

pytestmark = pytest.mark.slow

QUICK, HELD = 3, 4


def _tasks(folder: Path):
    """The tasks, built in a function so that they travel by value to processes and workers."""

    def quick(i):
        return i

    def held(i):
        import pathlib
        import time

        pathlib.Path(folder, f"started-{i}").touch()
        deadline = time.monotonic() + 60
        while not pathlib.Path(folder, "gate").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return i

    return quick, held


def _bar_counts(html: str, name: str) -> dict[str, tuple[int, float]]:
    """``{state: (count, width %)}`` of the bar in the row of task ``name``."""
    row = re.search(rf"<tr><td[^>]*><code>{name}</code>.*?</tr>", html).group(0)
    return {
        state: (int(count), float(width))
        for count, state, width in re.findall(
            r'title="(\d+) (\w+)" style="[^"]*width:([\d.]+)%', row
        )
    }


def _check(snap, folder: Path) -> None:
    html = render_html(snap, live=True)
    rows = {row.name: row for row in snap.rows}
    assert set(rows) == {"quick", "held"}
    for name, row in rows.items():
        assert row.total == (QUICK if name == "quick" else HELD)  # all counted from the start
        done = sum(row.counts[s] for s in ("success", "failed", "cancelled"))
        assert row.done == done
        assert re.search(rf">{done}/{row.total}<", html.split(f"<code>{name}</code>")[1])
        bar = _bar_counts(html, name)
        assert {s: c for s, (c, _) in bar.items()} == {s: n for s, n in row.counts.items() if n}
        for state, (count, width) in bar.items():
            assert abs(width - 100 * count / row.total) < 0.01, (state, width)
    held = rows["held"]
    started = len(list(folder.glob("started-*")))
    assert rows["quick"].counts["success"] == QUICK
    assert held.counts["success"] == 0  # none can pass the gate
    assert 1 <= held.counts["running"] <= started  # "running": the code executes now
    counts = snap.totals
    header = html.split("</div>")[0]
    assert f"{snap.total} tasks" in header and f"{counts['success']} success" in header
    assert STATE_COLORS["running"] in html


MODES = {
    "local": lambda: nbexec.run("local"),
    "sync": lambda: nbexec.run("sync"),
    "threads": lambda: nbexec.run("threads", workers=2),
    "processes": lambda: nbexec.run("processes", workers=2),
    "dask": lambda: nbexec.run("dask", workers=2, processes=False),
}


@pytest.mark.parametrize("mode", MODES)
def test_progress_matches_the_counts_mid_run(mode, tmp_path):
    quick, held = _tasks(tmp_path)
    run = MODES[mode]()
    errors: list = []

    def body():
        try:
            with run:
                nbexec.map(quick, range(QUICK))
                results = nbexec.map(held, range(HELD))
                assert [f.result() for f in results] == list(range(HELD))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=body)  # local and sync run tasks in the submitting thread
    thread.start()
    try:
        deadline = time.monotonic() + 60
        snap = None
        while time.monotonic() < deadline:
            snap = run.snapshot()
            rows = {row.name: row for row in snap.rows}
            quick_done = rows.get("quick") and rows["quick"].counts["success"] == QUICK
            if quick_done and "held" in rows and rows["held"].counts["running"]:
                break
            time.sleep(0.02)
        assert snap is not None
        time.sleep(0.3)  # let every worker thread take its task: counts settle while held
        _check(run.snapshot(), tmp_path)
    finally:
        (tmp_path / "gate").touch()
        thread.join(60)
    assert not errors, errors
    final = run.snapshot()
    assert final.totals["success"] == QUICK + HELD
