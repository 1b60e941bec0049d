"""The table's header and columns in every state: never "finished" before the run ended, the same
labels in the same order whatever the state, "interrupted" when it was."""

from __future__ import annotations

import re

import pytest

from nbexec.core.render import COLUMNS, render_html, render_text, status_of
from nbexec.core.snapshot import NameRow, Snapshot


def _snapshot(counts: dict[str, int], **info: object) -> Snapshot:
    total = sum(counts.values())
    rows = (NameRow("work", dict(counts), total, 0.01, 0.02),) if total else ()
    return Snapshot(
        rows=rows,
        totals=dict(counts),
        total=total,
        failures=(),
        failed_count=0,
        slowest=(),
        elapsed=0.5,
        finished=bool(info.get("ended")),
        version=1,
        info=dict(info),
    )


STATES = {
    "starting": _snapshot({}),
    "running": _snapshot({"pending": 2, "running": 2, "success": 1}),
    "finished": _snapshot({"success": 5}, ended=True),
    "interrupted": _snapshot({"success": 3, "cancelled": 2}, ended=True, interrupted=True),
}


@pytest.mark.parametrize("expected", list(STATES))
def test_status_is_the_runs_state(expected):
    assert status_of(STATES[expected]) == expected


def test_an_empty_run_not_ended_is_starting_never_finished():
    snap = _snapshot({})
    assert status_of(snap) == "starting"
    html = render_html(snap, live=True)
    assert "finished" not in html and ">starting</b>" in html


@pytest.mark.parametrize("live", [True, False])
def test_same_header_order_and_column_labels_in_every_state(live):
    shapes = set()
    for state, snap in STATES.items():
        html = render_html(snap, live=live)
        header = re.search(r"<div class='nbexec-header'[^>]*>(.*?)</div>", html).group(1)
        parts = header.split(" · ")
        assert parts[0] == "<b>nbexec</b>" and f">{state}</b>" in parts[1]
        assert re.fullmatch(r"\d+ tasks?", parts[2]), parts
        labels = re.findall(r"<th[^>]*>(\w+)</th>", html)
        if snap.total:
            assert tuple(labels) == COLUMNS
        shapes.add(len(parts))
    assert len(shapes) == 1, "the header has as many parts in every state"


def test_interrupted_is_in_the_header_and_the_text():
    snap = STATES["interrupted"]
    assert "(interrupted)" in render_text(snap).splitlines()[0]
    assert ">interrupted</b>" in render_html(snap) and "finished" not in render_html(snap)
