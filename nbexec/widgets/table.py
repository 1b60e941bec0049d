"""The live task table (ipywidgets), rendered from a run's ``Snapshot`` only.

One row per task name (a stacked progress bar, done/total, counts per state, mean/max duration),
the failures with their error and an expandable traceback, the slowest tasks, the elapsed time and,
for Dask, workers and the dashboard link. A refresh costs the same with 100 tasks or 100,000: it
reads one snapshot (aggregated per name) and sets only the traits whose value changed.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from traitlets import Int, Unicode

from .. import widgets as _base
from ..render import STATE_COLORS, _bar, _seconds, format_counts, render_html, render_text
from ..snapshot import NameRow, Snapshot

__all__ = ["RunTable", "SummaryView", "header_html", "failures_html", "slowest_html"]

_esc = html.escape


def header_html(snapshot: Snapshot) -> str:
    """The table's first line: mode, tasks, counts, status, elapsed, workers, dashboard link."""
    info = snapshot.info
    status = "finished" if snapshot.finished else "running"
    parts = [f"<b>nbexec</b> {_esc(str(info.get('mode', '')))}".rstrip()]
    parts.append(f"{snapshot.total} task{'s' if snapshot.total != 1 else ''}")
    parts.append(format_counts(snapshot.totals))
    parts.append(f"{status} · {_seconds(snapshot.elapsed) or '0 s'}")
    workers = info.get("workers")
    if workers is not None:
        parts.append(f"{workers} worker{'s' if workers != 1 else ''}")
    elif snapshot.workers:
        n = len(snapshot.workers)
        parts.append(f"{n} worker{'s' if n != 1 else ''} used")
    lost = info.get("workers_lost")
    if lost:
        parts.append(f"{lost} worker{'s' if lost != 1 else ''} lost")
    if info.get("note"):
        parts.append(f"<b>{_esc(str(info['note']))}</b>")
    link = info.get("dashboard_link")
    if link:
        parts.append(f'<a href="{_esc(str(link))}" target="_blank">dashboard</a>')
    return f"<div class='nbexec-header'>{' · '.join(parts)}</div>"


def failures_html(snapshot: Snapshot) -> str:
    """Failed tasks: error on one line, traceback folded in ``<details>``; "" without failures."""
    if not snapshot.failed_count:
        return ""
    items = []
    for f in snapshot.failures:
        where = f" on {_esc(f.where)}" if f.where else ""
        trace = f"<pre style='font-size:85%'>{_esc(f.traceback)}</pre>" if f.traceback else ""
        items.append(
            f"<details><summary><code>{_esc(f.name)}</code>{where}: "
            f"<span style='color:{STATE_COLORS['failed']}'>{_esc(f.error or '')}</span>"
            f"</summary>{trace}</details>"
        )
    more = snapshot.failed_count - len(snapshot.failures)
    if more > 0:
        items.append(f"<div>... and {more} more failed</div>")
    return f"<div><b>Failed ({snapshot.failed_count})</b>{''.join(items)}</div>"


def slowest_html(snapshot: Snapshot) -> str:
    """The slowest successful tasks with their duration and where they ran; "" if none."""
    if not snapshot.slowest:
        return ""
    items = "".join(
        f"<li><code>{_esc(t.name)}</code> {_seconds(t.duration)}"
        f"{' on ' + _esc(t.where) if t.where else ''}</li>"
        for t in snapshot.slowest
    )
    return f"<div><b>Slowest</b><ul style='margin:0'>{items}</ul></div>"


def _set(widget: Any, name: str, value: Any) -> None:
    if getattr(widget, name) != value:
        setattr(widget, name, value)


class NameRowView(w.HBox):
    """One task name: name, stacked progress bar by state, done/total, counts, mean/max duration."""

    task_name = Unicode("", help="the task name this row shows")

    def __init__(self, task_name: str, **kwargs: Any):
        self.label = w.HTML(f"<code>{_esc(task_name)}</code>", layout=w.Layout(width="14em"))
        self.bar = w.HTML(layout=w.Layout(width="13em"))
        self.done = w.Label(layout=w.Layout(width="9em"))
        self.counts = w.Label(layout=w.Layout(width="24em"))
        self.timing = w.Label()
        super().__init__(
            [self.label, self.bar, self.done, self.counts, self.timing],
            task_name=task_name,
            **kwargs,
        )

    def close_all(self) -> None:
        """Close this row and its child widgets."""
        for child in self.children:
            child.close()
        self.close()

    def update(self, row: NameRow) -> None:
        """Show ``row``'s counts; traits that did not change send nothing."""
        _set(self.bar, "value", _bar(row.counts, row.total))
        _set(self.done, "value", f"{row.done}/{row.total} done")
        _set(self.counts, "value", format_counts(row.counts))
        timing = ""
        if row.mean_duration is not None:
            timing = f"mean {_seconds(row.mean_duration)}, max {_seconds(row.max_duration)}"
        _set(self.timing, "value", timing)


class RunTable(w.VBox):
    """The live task table of one run; ``refresh()`` redraws it from ``run.snapshot()``."""

    max_rows = Int(50, help="task names shown as rows; the others are summarised in one line")
    plain_text = Unicode(
        "", help="text/plain of this view; empty means render_text of the current snapshot"
    )

    def __init__(self, run: Any, **kwargs: Any):
        self.run = run
        self.header = w.HTML()
        self.rows: dict[str, NameRowView] = {}
        self.rows_box = w.VBox()
        self.more = w.Label()
        self.failures = w.HTML()
        self.slowest = w.HTML()
        self.refreshes = 0
        self._layout_key: tuple = ()
        super().__init__(
            [self.header, self.rows_box, self.more, self.failures, self.slowest], **kwargs
        )
        self.add_class("nbexec-table")
        self.refresh()

    def set_run(self, run: Any) -> None:
        """Show ``run`` instead (the rows of the previous run are closed)."""
        rows, self.rows = self.rows, {}
        self.rows_box.children = ()
        for row in rows.values():
            row.close_all()
        self.run = run
        self._layout_key = ()
        self.refresh()

    def refresh(self, snapshot: Snapshot | None = None) -> Snapshot:
        """Redraw from ``snapshot`` (default: a new one); cost depends on task names, not tasks."""
        snap = self.run.snapshot() if snapshot is None else snapshot
        self.refreshes += 1
        _set(self.header, "value", header_html(snap))
        shown = snap.rows[: self.max_rows]
        new = [row.name for row in shown if row.name not in self.rows]
        for name in new:
            self.rows[name] = NameRowView(name)
        if new:
            self.rows_box.children = tuple(self.rows[row.name] for row in shown)
        for row in shown:
            self.rows[row.name].update(row)
        hidden = snap.rows[self.max_rows :]
        more = ""
        if hidden:
            tasks = sum(row.total for row in hidden)
            more = f"... and {len(hidden)} more task names ({tasks} tasks)"
        _set(self.more, "value", more)
        key = (snap.failed_count, len(snap.failures))
        if key != self._layout_key:
            self._layout_key = key
            self.failures.value = failures_html(snap)
        _set(self.slowest, "value", slowest_html(snap))
        return snap

    def tick(self) -> None:
        """Update only the header (elapsed time) from a new snapshot."""
        _set(self.header, "value", header_html(self.run.snapshot()))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        text = self.plain_text or render_text(self.run.snapshot())
        if not _base.in_kernel():
            return {"text/plain": text, "text/html": render_html(self.run.snapshot())}
        return _base.with_text(super()._repr_mimebundle_(**kwargs), text)

    def __repr__(self) -> str:
        return self.plain_text or render_text(self.run.snapshot())


class SummaryView(w.HTML):
    """The final table of a run as one HTML widget whose text/plain is ``render_text``."""

    text = Unicode("", help="the deterministic text/plain of this view (render_text)")

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> SummaryView:
        """The summary of ``snapshot``: HTML table with failures and slowest; text per name."""
        return cls(value=render_html(snapshot), text=render_text(snapshot))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if not _base.in_kernel():
            return {"text/plain": self.text, "text/html": self.value}
        return _base.with_text(super()._repr_mimebundle_(**kwargs), self.text)

    def __repr__(self) -> str:
        return self.text
