"""Status model -> text and HTML: the one renderer behind every view of a run.

Pure functions of a ``Snapshot``. The live widget, the static view a cell leaves behind, the
executor panel and ``run.table`` all call ``render_html``; ``render_text`` is the deterministic
text/plain (task names and state counts only, identical in every mode).

``render_html(snapshot)`` (the static view) shows nothing that differs from mode to mode or run to
run except durations, each inside ``<span class="nbexec-time">`` so the shipped nbval sanitize
file can normalise them. ``live=True`` adds the mode, workers, dashboard link, the slowest tasks
and tracebacks (widgets are not compared by nbval).
"""

from __future__ import annotations

import html
import re
from typing import Any

from .snapshot import STATES, Snapshot

__all__ = [
    "render_text",
    "render_html",
    "format_counts",
    "status_of",
    "RunView",
    "FinishedRun",
    "STATE_COLORS",
    "COLUMNS",
]

STATE_COLORS = {
    "pending": "#bdbdbd",
    "running": "#42a5f5",
    "retrying": "#ffb300",
    "success": "#66bb6a",
    "failed": "#ef5350",
    "cancelled": "#8d6e63",
}

#: The table's column labels, in order, in every mode and state.
COLUMNS = ("task", "progress", "done", "states", "mean", "max")

_esc = html.escape
_CELL = "padding:2px 10px 2px 0;vertical-align:top;text-align:left;border:none"
_NUM = "padding:2px 10px 2px 0;vertical-align:top;text-align:right;border:none;white-space:nowrap"


def format_counts(counts: dict[str, int]) -> str:
    """``"3 success, 1 failed"``: the non-zero counts in state order."""
    parts = [f"{counts[s]} {s}" for s in STATES if counts.get(s)]
    return ", ".join(parts) if parts else "no tasks"


def status_of(snapshot: Snapshot) -> str:
    """``starting``, ``running``, ``finished`` or ``interrupted`` (never finished before ended).

    A run is finished once its block ended (``info["ended"]``, set by ``Run.__exit__``); before
    that, a run without tasks is starting, whatever the tracker's open count says.
    """
    info = snapshot.info
    if info.get("interrupted"):
        return "interrupted"
    if info.get("ended"):
        return "finished"
    return "running" if snapshot.total else "starting"


def render_text(snapshot: Snapshot) -> str:
    """Deterministic text: one line for the run, one per task name (in first-submission order)."""
    interrupted = " (interrupted)" if snapshot.info.get("interrupted") else ""
    if not snapshot.total:
        return f"nbexec tasks: none{interrupted}"
    n = snapshot.total
    lines = [
        f"nbexec tasks: {n} task{'s' if n != 1 else ''} - {format_counts(snapshot.totals)}"
        f"{interrupted}"
    ]
    width = max(len(row.name) for row in snapshot.rows)
    for row in snapshot.rows:
        lines.append(f"  {row.name:<{width}}  {format_counts(row.counts)}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _time(value: float | None) -> str:
    """A duration in a span the sanitize file normalises (an empty span for None, so that
    the static view has the same shape whichever mode's events arrived first)."""
    return f'<span class="nbexec-time">{_seconds(value)}</span>'


def _bar(counts: dict[str, int], total: int) -> str:
    """A stacked bar, one coloured segment per state, widths proportional to the counts."""
    parts = []
    for state in STATES:
        count = counts.get(state, 0) if total else 0
        if count:
            parts.append(
                f'<span title="{count} {state}" style="display:inline-block;height:100%;'
                f'width:{100 * count / total:.2f}%;background:{STATE_COLORS[state]}"></span>'
            )
    return (
        '<div style="width:8em;height:0.9em;background:#eee;border-radius:2px;overflow:hidden;'
        f'display:flex;margin-top:0.2em">{"".join(parts)}</div>'
    )


def _legend() -> str:
    chips = "".join(
        f'<span style="margin-right:1em;white-space:nowrap"><span style="display:inline-block;'
        f"width:0.8em;height:0.8em;border-radius:2px;background:{color};margin-right:0.3em;"
        f'vertical-align:-0.05em"></span>{state}</span>'
        for state, color in STATE_COLORS.items()
    )
    return f'<div class="nbexec-legend" style="color:#666;font-size:90%;margin:2px 0">{chips}</div>'


def _header(snapshot: Snapshot, live: bool) -> str:
    """``nbexec · status · N tasks · counts · elapsed`` then, live only, mode/workers/link."""
    n = snapshot.total
    status = status_of(snapshot)
    colour = {"interrupted": STATE_COLORS["failed"], "running": STATE_COLORS["running"]}
    style = f' style="color:{colour[status]}"' if status in colour else ""
    parts = [
        "<b>nbexec</b>",
        f"<b class='nbexec-status'{style}>{status}</b>",
        f"{n} task{'s' if n != 1 else ''}",
        _esc(format_counts(snapshot.totals)),
        _time(snapshot.elapsed),
    ]
    if live:
        info = snapshot.info
        if info.get("mode"):
            parts.append(_esc(str(info["mode"])))
        workers = info.get("workers")
        if workers is None and snapshot.workers:
            workers = len(snapshot.workers)
        if workers is not None:
            parts.append(f"{workers} worker{'s' if workers != 1 else ''}")
        if info.get("workers_lost"):
            lost = info["workers_lost"]
            parts.append(f"{lost} worker{'s' if lost != 1 else ''} lost")
        if info.get("note"):
            parts.append(f"<b>{_esc(str(info['note']))}</b>")
        if info.get("dashboard_link"):
            link = _esc(str(info["dashboard_link"]))
            parts.append(f'<a href="{link}" target="_blank">dashboard</a>')
    return f"<div class='nbexec-header' style='margin-bottom:2px'>{' · '.join(parts)}</div>"


def _name(name: str) -> str:
    """A task name, escaped, that may wrap after ``_``, ``.`` and ``-`` in a narrow notebook."""
    return re.sub(r"([_.\-])", r"\1<wbr>", _esc(name))


def _rows(snapshot: Snapshot, max_rows: int) -> str:
    head = "".join(
        f"<th style='{_NUM if label in ('done', 'mean', 'max') else _CELL}'>{label}</th>"
        for label in COLUMNS
    )
    rows = []
    for row in snapshot.rows[:max_rows]:
        rows.append(
            f"<tr><td style='{_CELL};overflow-wrap:anywhere'><code>{_name(row.name)}</code></td>"
            f"<td style='{_CELL}'>{_bar(row.counts, row.total)}</td>"
            f"<td style='{_NUM}'>{row.done}/{row.total}</td>"
            f"<td style='{_CELL}'>{_esc(format_counts(row.counts))}</td>"
            f"<td style='{_NUM}'>{_time(row.mean_duration)}</td>"
            f"<td style='{_NUM}'>{_time(row.max_duration)}</td></tr>"
        )
    hidden = snapshot.rows[max_rows:]
    if hidden:
        tasks = sum(row.total for row in hidden)
        rows.append(
            f"<tr><td colspan='{len(COLUMNS)}' style='{_CELL}'>... and {len(hidden)} more task "
            f"names ({tasks} tasks)</td></tr>"
        )
    return (
        "<table style='border-collapse:collapse;margin:0;table-layout:auto;"
        "font-variant-numeric:tabular-nums'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _failures(snapshot: Snapshot, live: bool) -> str:
    if not snapshot.failed_count:
        return ""
    items = []
    for f in snapshot.failures:
        error = f"<span style='color:{STATE_COLORS['failed']}'>{_esc(f.error or '')}</span>"
        if live:
            where = f" on {_esc(f.where)}" if f.where else ""
            pre = "<pre style='font-size:85%;white-space:pre-wrap'>"
            trace = f"{pre}{_esc(f.traceback)}</pre>" if f.traceback else ""
            output = getattr(f, "output", None)
            if output:  # the last lines the task printed
                trace = f"<div>printed:</div>{pre}{_esc(output)}</pre>{trace}"
            items.append(
                f"<details><summary><code>{_esc(f.name)}</code>{where}: {error}</summary>"
                f"{trace}</details>"
            )
        else:
            items.append(f"<div><code>{_esc(f.name)}</code>: {error}</div>")
    more = snapshot.failed_count - len(snapshot.failures)
    if more > 0:
        items.append(f"<div>... and {more} more failed</div>")
    return f"<div class='nbexec-failures'><b>failed ({snapshot.failed_count})</b>{''.join(items)}</div>"


def _slowest(snapshot: Snapshot) -> str:
    if not snapshot.slowest:
        return ""
    items = "".join(
        f"<li><code>{_esc(t.name)}</code> {_time(t.duration)}"
        f"{' on ' + _esc(t.where) if t.where else ''}</li>"
        for t in snapshot.slowest
    )
    return (
        "<details class='nbexec-slowest'><summary>slowest tasks</summary>"
        f"<ul style='margin:0'>{items}</ul></details>"
    )


def render_html(
    snapshot: Snapshot, *, live: bool = False, details: bool = True, max_rows: int = 50
) -> str:
    """The run's table: header, one row per task name, legend, failures (and, live, slowest).

    The static form (``live=False``) is identical in every mode except its durations; ``live``
    adds the mode, workers, dashboard link, tracebacks and the slowest tasks (folded).
    """
    out = [
        # indented as notebook front ends indent text outputs (1ch of the code font), so the
        # table lines up with the cell's printed output; it wraps rather than scrolls or clips
        "<div class='nbexec-table' style='max-width:100%;box-sizing:border-box;"
        "padding-left:0.55em;overflow-x:auto;line-height:1.4'>",
        _header(snapshot, live),
        _rows(snapshot, max_rows),
        _legend(),
    ]
    if details:
        out.append(_failures(snapshot, live))
        if live:
            out.append(_slowest(snapshot))
    out.append("</div>")
    return "".join(out)


class RunView:
    """Displays a run's current state as text and HTML (IPython's rich display protocol).

    Both are static (counts, and durations the sanitize file normalises), so a notebook displaying
    ``run.table`` compares equal under nbval in every mode.
    """

    #: Set by the IPython front end: shows a run that is still going as its live table.
    live_display: Any = None

    def __init__(self, run: Any):
        self.run = run

    @property
    def _ipython_display_(self) -> Any:
        """While the run goes on (and a front end can show it live): its live table."""
        show, run = RunView.live_display, self.run
        if show is None or not (run.active or not run.snapshot().finished):
            raise AttributeError("_ipython_display_")  # IPython then uses the static bundle
        return lambda: show(run)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        snapshot = self.run.snapshot()
        return {"text/plain": render_text(snapshot), "text/html": render_html(snapshot)}

    def __repr__(self) -> str:
        return render_text(self.run.snapshot())


class FinishedRun:
    """What is kept of a finished run once it was freed: its last snapshot."""

    def __init__(self, snapshot: Snapshot):
        self._snapshot = snapshot

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def summary(self) -> dict[str, dict[str, int]]:
        """``{task_name: {state: count}}`` with the non-zero counts (as ``Run.summary``)."""
        return {row.name: {s: n for s, n in row.counts.items() if n} for row in self._snapshot.rows}

    @property
    def table(self) -> RunView:
        return RunView(self)

    def __repr__(self) -> str:
        return f"<FinishedRun: {render_text(self._snapshot).splitlines()[0]}>"
