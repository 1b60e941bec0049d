"""``show_run``: the live task table under the cell, then the one static view it leaves behind.

In a kernel with ipywidgets, the live table is ONE widget model (``RunTable``) displayed with a
display id and ONLY the widget-view mime type. ``LiveView.finish()`` then blanks that output
(``update_display_data`` with an empty bundle), closes the model and displays the static view:
``text/html`` from ``render_html`` and the deterministic ``text/plain`` of ``render_text``. A
saved notebook thus keeps one rich output per cell that renders without a kernel or widget
manager, and nbval (which ignores display updates and never compares the widget-view mime type)
compares only the static view. Without widgets only the static view is displayed, at the end.

Finished views keep a snapshot, never the run: the run and its futures (and so the results) are
freed as soon as the user's names let go of them.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import weakref
from typing import Any

from .. import widgets as _base
from ..core.render import render_html, render_text
from ..core.snapshot import Snapshot
from ..session import set_last_run

__all__ = [
    "show_run",
    "LiveView",
    "INTERVAL",
]

logger = logging.getLogger("nbexec.widgets")

#: Seconds between two refreshes of a live view (at most 4 a second).
INTERVAL = 0.25
_TICK = 1.0  # elapsed time in the header moves on at least this often while tasks run
_CHART_INTERVAL = 1.0  # the task-stream chart redraws at most once a second
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class _StaticStream:
    """A ``--dashboard`` cell's saved view: the run's task stream as a PNG (which nbval does not
    compare: it shows one run's times) and the dashboard's text/plain, the same in every mode."""

    def __init__(self, text: str, png: bytes):
        self.text = text
        self.png = png

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/plain": self.text, "image/png": base64.b64encode(self.png).decode("ascii")}

    def __repr__(self) -> str:
        return self.text


def _stream_view(run: Any, text: str) -> _StaticStream:
    from ._streampng import stream_png
    from .taskstream import TaskStream

    chart = TaskStream(run.tracker, widget=False)
    return _StaticStream(text, stream_png(chart.data, chart.lanes, chart.color))


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
    if executor.dask_client is not None:
        from .dashboard import dashboard_link

        link = dashboard_link(executor.dask_client)
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
    """The outputs of one run: the live ``table`` (a RunTable or None), ``dashboard`` and, once
    finished, ``summary`` (the static view) and ``snapshot``; ``run`` is None once finished."""

    def __init__(self, run: Any, *, widgets: bool, table: bool = True, interval: float = INTERVAL):
        self.run = run
        self.show_table = table
        self.widgets = widgets
        self.interval = interval
        self.table: Any = None
        self.handle: Any = None  # the display handle of the live table's output
        self.dashboard: Any = None
        self.dashboard_live = False  # a widget dashboard, replaced by its static view at the end
        self.dashboard_handle: Any = None  # its output's display handle
        self.summary: Any = None
        self.snapshot: Snapshot | None = None
        self.refreshes = 0
        self.ticks = 0
        self._seen = -1
        self._last_tick = time.monotonic()
        self._chart_at = 0.0
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
        run = self.run
        if run is None:
            return False
        version = run.tracker.version
        now = time.monotonic()
        if version == self._seen:
            if self.table is not None and now - self._last_tick >= _TICK:
                self._last_tick = now
                self.table.tick()
                self.ticks += 1
            return False
        self._seen = version
        snap = run.snapshot()
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
        """Stop updating, replace the live table by the static view (once) and let go of the run."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        run = self.run
        try:
            run.tracker.wait_started(1.0)  # Dask: starts may still be on their way from workers
            self.snapshot = run.snapshot()
            self._finish(self.snapshot, run)
        except Exception:  # noqa: BLE001 - never raise out of a cell's clean-up
            logger.debug("live view finish failed", exc_info=True)
        self.run = None
        set_last_run(run, self.snapshot)

    def _finish(self, snap: Snapshot, run: Any) -> None:
        table, self.table = self.table, None
        if table is not None:
            table.html = ""  # what a notebook client that keeps closed models would store
            table.close_all()  # before the output goes: its view removes itself first
            if self.handle is not None:
                self.handle.update({}, raw=True)  # the static view below replaces it for good
        board = self.dashboard
        if self.dashboard_live:
            board.close()  # the live chart or iframes go; their static view follows the table
            if self.dashboard_handle is not None:
                self.dashboard_handle.update({}, raw=True)
        chart = getattr(board, "chart", None)
        if chart is not None:
            chart.refresh()
        if self.show_table and snap.total:  # a cell that ran no task leaves no table
            self.summary = _Static(render_text(snap), render_html(snap))
            _base.display(self.summary)
        if self.dashboard_live:
            if snap.total:
                _base.display(_stream_view(run, board.text))
        elif board is not None and getattr(board, "deferred", False):
            self.dashboard.refresh()
            _base.display(self.dashboard)

    def __repr__(self) -> str:
        state = "finished" if self._finished else "live"
        snap = self.snapshot if self.run is None else self.run.snapshot()
        return f"<LiveView {state}: {render_text(snap)!r}>" if snap else f"<LiveView {state}>"


def live_bundle(widget: Any, note: str | None = None) -> dict[str, Any]:
    """The live table's output: only the widget-view mime type (nothing nbval compares), plus
    ``note`` as text/plain when given (what static viewers show instead of the widget)."""
    bundle = widget._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    out = {WIDGET_VIEW: bundle[WIDGET_VIEW]}
    if note is not None:
        out["text/plain"] = note
    return out


def show_run(
    run: Any,
    *,
    table: bool = True,
    dashboard: bool = False,
    plots: Any = None,
    note: str | None = None,
) -> LiveView:
    """Show ``run``'s live task table (and the dashboard plots) under the cell; never raises.

    With ipywidgets in a kernel the table is one widget model updated from a background thread
    at most 4 times a second; otherwise nothing shows until ``finish()`` displays the static view.
    ``note``: a fixed text/plain shown with the live table (or alone, without widgets) for views
    that are never finished under their cell (background cells).
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
            _show_widgets(view, run, table, dashboard, plots, note)
            view.start()
            return view
        except Exception:  # noqa: BLE001 - fall back to text and HTML
            logger.debug("widget view failed; falling back to HTML", exc_info=True)
            if view.table is not None:
                view.table.close_all()
            view.widgets = False
            view.table = None
            view.dashboard = None
    try:
        if note is not None and table:
            _base.display({"text/plain": note}, raw=True)
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


def _show_widgets(
    view: LiveView, run: Any, table: bool, dashboard: bool, plots: Any, note: str | None = None
) -> None:
    if table:
        from .table import RunTable

        view.table = RunTable(run)
        view.handle = _base.display(live_bundle(view.table, note), raw=True, display_id=True)
    if dashboard:
        from .dashboard import dashboard as make_dashboard

        view.dashboard = board = make_dashboard(plots, run=run)
        if board.widget is not None:  # only the widget view: nothing nbval compares
            view.dashboard_live = True
            view.dashboard_handle = _base.display(
                live_bundle(board.widget), raw=True, display_id=True
            )
        else:
            _base.display(board)
