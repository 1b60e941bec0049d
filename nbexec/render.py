"""Status model -> text and HTML. Pure functions of a ``Snapshot``.

The text is deterministic and identical in every mode: task names and state counts only (never
times, keys, addresses or ids). The HTML adds progress bars, timings, workers and errors.
"""

from __future__ import annotations

import html
from typing import Any

from .snapshot import STATES, Snapshot

__all__ = ["render_text", "render_html", "format_counts", "RunView", "STATE_COLORS"]

STATE_COLORS = {
    "pending": "#bdbdbd",
    "running": "#42a5f5",
    "retrying": "#ffb300",
    "success": "#66bb6a",
    "failed": "#ef5350",
    "cancelled": "#8d6e63",
}


def format_counts(counts: dict[str, int]) -> str:
    """``"3 success, 1 failed"``: the non-zero counts in state order."""
    parts = [f"{counts[s]} {s}" for s in STATES if counts.get(s)]
    return ", ".join(parts) if parts else "no tasks"


def render_text(snapshot: Snapshot) -> str:
    """Deterministic text: one line for the run, one per task name (in first-submission order)."""
    if not snapshot.total:
        return "nbexec tasks: none"
    n = snapshot.total
    lines = [f"nbexec tasks: {n} task{'s' if n != 1 else ''} - {format_counts(snapshot.totals)}"]
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


def _bar(counts: dict[str, int], total: int) -> str:
    if not total:
        return ""
    parts = []
    for state in STATES:
        count = counts.get(state, 0)
        if count:
            parts.append(
                f'<span title="{count} {state}" style="display:inline-block;height:100%;'
                f'width:{100 * count / total:.2f}%;background:{STATE_COLORS[state]}"></span>'
            )
    return (
        '<div style="width:12em;height:0.9em;background:#eee;border-radius:2px;overflow:hidden;'
        f'display:flex">{"".join(parts)}</div>'
    )


def render_html(snapshot: Snapshot, *, details: bool = True, stable: bool = False) -> str:
    """An HTML table of the snapshot: per name a progress bar and counts; failures; slowest tasks.

    ``stable=True`` leaves out everything that differs from run to run or from mode to mode
    (times, keys, workers, tracebacks), for outputs that nbval compares.
    """
    esc = html.escape
    head = "".join(f"<th>{s}</th>" for s in STATES)
    timing_head = "" if stable else "<th>mean</th><th>max</th>"
    rows = []
    for row in snapshot.rows:
        cells = "".join(
            f"<td style='text-align:right'>{row.counts.get(s, 0) or ''}</td>" for s in STATES
        )
        timings = (
            ""
            if stable
            else (
                f"<td style='text-align:right'>{_seconds(row.mean_duration)}</td>"
                f"<td style='text-align:right'>{_seconds(row.max_duration)}</td>"
            )
        )
        rows.append(
            f"<tr><td><code>{esc(row.name)}</code></td><td>{_bar(row.counts, row.total)}</td>"
            f"<td style='text-align:right'>{row.done}/{row.total}</td>{cells}{timings}</tr>"
        )
    mode = "" if stable else f" {html.escape(str(snapshot.info.get('mode', '')))}"
    header = [f"<b>nbexec</b>{mode}", f"{snapshot.total} tasks", format_counts(snapshot.totals)]
    if not stable:
        header += _live_header(snapshot)
    out = [
        '<div class="nbexec-table">',
        f"<div>{' · '.join(header)}</div>",
        "<table><thead><tr><th>task</th><th>progress</th><th>done</th>"
        f"{head}{timing_head}</tr></thead><tbody>{''.join(rows)}</tbody></table>",
    ]
    if details and snapshot.failures:
        more = snapshot.failed_count - len(snapshot.failures)
        items = []
        for f in snapshot.failures:
            if stable:
                items.append(f"<div><code>{esc(f.name)}</code>: {esc(f.error or '')}</div>")
                continue
            trace = f"<pre>{esc(f.traceback)}</pre>" if f.traceback else ""
            if f.output:  # the last lines the task printed
                trace = f"<div>printed:</div><pre>{esc(f.output)}</pre>{trace}"
            where = f" on {esc(f.where)}" if f.where else ""
            items.append(
                f"<details><summary><code>{esc(f.name)}</code> <code>{esc(f.key)}</code>{where}: "
                f"{esc(f.error or '')}</summary>{trace}</details>"
            )
        if more > 0:
            items.append(f"<div>... and {more} more failed</div>")
        out.append(f"<div><b>Failed</b>{''.join(items)}</div>")
    if details and snapshot.slowest and not stable:
        items = "".join(
            f"<li><code>{esc(t.name)}</code> {_seconds(t.duration)}"
            f"{' on ' + esc(t.where) if t.where else ''}</li>"
            for t in snapshot.slowest
        )
        out.append(f"<div><b>Slowest</b><ul>{items}</ul></div>")
    out.append("</div>")
    return "".join(out)


def _live_header(snapshot: Snapshot) -> list[str]:
    """Header parts that change while a run goes on: status and time, dashboard, workers."""
    esc = html.escape
    info = snapshot.info
    status = "finished" if snapshot.finished else "running"
    parts = [f"{status} · {_seconds(snapshot.elapsed) or '0 s'}"]
    if info.get("dashboard_link"):
        link = esc(str(info["dashboard_link"]))
        parts.append(f'<a href="{link}" target="_blank">dashboard</a>')
    if info.get("workers_lost"):
        lost = info["workers_lost"]
        parts.append(f"{lost} worker{'s' if lost != 1 else ''} lost")
    if info.get("note"):
        parts.append(f"<b>{esc(str(info['note']))}</b>")
    if snapshot.workers:
        n = len(snapshot.workers)
        parts.append(f"{n} worker{'s' if n != 1 else ''} used")
    return parts


class RunView:
    """Displays a run's current state as text and HTML (IPython's rich display protocol).

    Both are stable (counts only), so a notebook displaying ``run.table`` compares equal under
    nbval in every mode; the live widget under an ``%%executor`` cell shows timings and workers.
    """

    def __init__(self, run: Any):
        self.run = run

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        snapshot = self.run.snapshot()
        return {
            "text/plain": render_text(snapshot),
            "text/html": render_html(snapshot, stable=True),
        }

    def __repr__(self) -> str:
        return render_text(self.run.snapshot())
