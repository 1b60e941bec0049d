"""``show_run``: the live task table under the cell, kept up to date from a background thread.

The first output is displayed before any task runs, so its text/plain is a constant
(``render_text`` of an empty run). The widget then follows the run at most ``INTERVAL`` apart, and
only when the run's status model changed. ``LiveView.finish()`` stops the updater and displays one
summary output whose text/plain is ``render_text`` of the final snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from .. import widgets as _base
from ..render import render_html, render_text

__all__ = ["show_run", "LiveView", "last_run", "set_last_run", "on_last_run", "INTERVAL"]

logger = logging.getLogger("nbexec.widgets")

#: Seconds between two refreshes of a live view (at most 4 a second).
INTERVAL = 0.25
_TICK = 1.0  # elapsed time in the header moves on at least this often while tasks run
_CHART_INTERVAL = 1.0  # the task-stream chart redraws at most once a second

EMPTY_TEXT = "nbexec tasks: none"
_WAITING_HTML = (
    "<div class='nbexec-table'><b>nbexec</b> tasks: none yet; the table follows when the cell "
    "ends</div>"
)

_last: Any = None
_listeners: list[weakref.WeakMethod] = []


def last_run() -> Any:
    """The run most recently shown by ``show_run`` (None before any)."""
    return _last


def set_last_run(run: Any) -> None:
    """Record ``run`` as the last run and tell the listeners (e.g. open executor panels)."""
    global _last
    _last = run
    for ref in list(_listeners):
        callback = ref()
        if callback is None:
            _listeners.remove(ref)
            continue
        try:
            callback(run)
        except Exception:  # noqa: BLE001 - a broken listener must not break a cell
            logger.debug("last-run listener failed", exc_info=True)


def on_last_run(callback: Callable[[Any], None]) -> None:
    """Call the bound method ``callback(run)`` whenever the last run changes (held weakly)."""
    _listeners.append(weakref.WeakMethod(callback))


class _Static:
    """A text + HTML output for front ends without widgets."""

    def __init__(self, text: str, html_text: str):
        self.text = text
        self.html = html_text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": self.text, "text/html": self.html}

    def __repr__(self) -> str:
        return self.text


def _describe_into(run: Any) -> None:
    """Put the executor's mode, workers and dashboard link into the run's ``tracker.info`` once."""
    executor = run.executor
    info = run.tracker.info
    try:
        described = executor.describe()
    except Exception:  # noqa: BLE001 - a cluster that went away must not break the cell
        return
    info.setdefault("mode", described.mode)
    if described.workers is not None:
        info["workers"] = described.workers
    if getattr(executor, "client", None) is not None:
        from .dashboard import dashboard_link

        link = dashboard_link(executor.client)
        if link:
            info["dashboard_link"] = link


def _updater(ref: weakref.ref, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        view = ref()
        if view is None:
            return
        try:
            view._step()
        except Exception:  # noqa: BLE001 - stop updating rather than print into the cell
            logger.debug("live view update failed", exc_info=True)
            return
        del view


class LiveView:
    """The live outputs of one run: ``table`` (a RunTable or None) and ``dashboard``."""

    def __init__(self, run: Any, *, widgets: bool, table: bool = True, interval: float = INTERVAL):
        self.run = run
        self.show_table = table
        self.widgets = widgets
        self.interval = interval
        self.table: Any = None
        self.dashboard: Any = None
        self.summary: Any = None
        self.refreshes = 0
        self.ticks = 0
        self._seen = -1
        self._last_tick = time.monotonic()
        self._chart_at = 0.0
        self._running = True
        self._lock = threading.Lock()
        self._finished = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def finished(self) -> bool:
        """True once ``finish()`` ran."""
        return self._finished

    def start(self) -> None:
        """Start the background updater (only for widget views)."""
        if self.table is None and getattr(self.dashboard, "chart", None) is None:
            return
        self._thread = threading.Thread(
            target=_updater,
            args=(weakref.ref(self), self._stop, self.interval),
            name="nbexec-live-view",
            daemon=True,
        )
        self._thread.start()

    def _step(self) -> bool:
        """One update: a refresh if the status model changed, else maybe an elapsed-time tick."""
        version = self.run.tracker.version
        now = time.monotonic()
        if version == self._seen:
            if self._running and self.table is not None and now - self._last_tick >= _TICK:
                self._last_tick = now
                self.table.tick()
                self.ticks += 1
            return False
        self._seen = version
        snap = self.run.snapshot()
        self._running = not snap.finished
        self.refreshes += 1
        self._last_tick = now
        if self.table is not None:
            self.table.refresh(snap)
        chart = getattr(self.dashboard, "chart", None)
        if chart is not None and now - self._chart_at >= _CHART_INTERVAL:
            self._chart_at = now
            chart.refresh()
        return True

    def finish(self) -> None:
        """Stop updating, update the live view once more and display the run's summary (once)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        try:
            self._finish()
        except Exception:  # noqa: BLE001 - never raise out of a cell's clean-up
            logger.debug("live view finish failed", exc_info=True)
        set_last_run(self.run)

    def _finish(self) -> None:
        snap = self.run.snapshot()
        if self.table is not None:
            self.table.refresh(snap)
            self.table.layout.display = "none"  # the summary below shows the same, for good
        chart = getattr(self.dashboard, "chart", None)
        if chart is not None:
            chart.refresh()
        if self.show_table:
            if self.widgets:
                from .table import SummaryView

                self.summary = SummaryView.from_snapshot(snap)
            else:
                self.summary = _Static(render_text(snap), render_html(snap, stable=True))
            _base.display(self.summary)
        if self.dashboard is not None and getattr(self.dashboard, "deferred", False):
            self.dashboard.refresh()
            _base.display(self.dashboard)

    def __repr__(self) -> str:
        state = "finished" if self._finished else "live"
        return f"<LiveView {state}: {render_text(self.run.snapshot())!r}>"


def show_run(
    run: Any, *, table: bool = True, dashboard: bool = False, plots: Any = None
) -> LiveView:
    """Display ``run``'s live task table (and the dashboard plots) under the cell; never raises.

    With ipywidgets in a kernel the table is a widget updated from a background thread at most
    4 times a second; otherwise a text/HTML output now and the summary from ``finish()``.
    """
    set_last_run(run)
    try:
        widgets = _base.use_widgets()
    except Exception:  # noqa: BLE001
        widgets = False
    view = LiveView(run, widgets=widgets, table=table)
    try:
        _describe_into(run)
    except Exception:  # noqa: BLE001
        logger.debug("describing the executor failed", exc_info=True)
    if widgets:
        try:
            _show_widgets(view, run, table, dashboard, plots)
            view.start()
            return view
        except Exception:  # noqa: BLE001 - fall back to text and HTML
            logger.debug("widget view failed; falling back to HTML", exc_info=True)
            view.widgets = False
            view.table = None
            view.dashboard = None
    try:
        if table:
            _base.display(_Static(EMPTY_TEXT, _WAITING_HTML))
        if dashboard:
            from .dashboard import dashboard as make_dashboard

            board = make_dashboard(plots, run=run, widgets=False)
            view.dashboard = board
            if board.chart is not None:
                board.deferred = True  # a static chart is only worth showing once tasks ran
            else:
                _base.display(board)
    except Exception:  # noqa: BLE001
        logger.debug("text view failed", exc_info=True)
    return view


def _show_widgets(view: LiveView, run: Any, table: bool, dashboard: bool, plots: Any) -> None:
    if table:
        from .table import RunTable

        view.table = RunTable(run, plain_text=EMPTY_TEXT)
        _base.display(view.table)
    if dashboard:
        from .dashboard import dashboard as make_dashboard

        view.dashboard = make_dashboard(plots, run=run)
        _base.display(view.dashboard)
