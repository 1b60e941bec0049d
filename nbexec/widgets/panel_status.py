"""The executor panel's status part: the status line, the last run's table, and following the
session within a second (whoever changed it, from whatever thread)."""

from __future__ import annotations

import html
import logging
import threading
import time
import weakref
from typing import Any

from .. import session
from ..core import history
from ..core.render import render_html
from .cluster_controls import cluster_lines, running_cluster
from .panel_parts import Stub

__all__ = ["PanelStatus", "REFRESH"]

logger = logging.getLogger("nbexec.widgets")

#: Seconds between two refreshes of an open panel's status (cluster changes, runs going).
REFRESH = 0.5


_open: weakref.WeakSet = weakref.WeakSet()  # the panels not closed yet
_thread_lock = threading.Lock()
_thread: threading.Thread | None = None


def _refresher() -> None:
    """Refresh every open panel each ``REFRESH`` seconds; end when none is left open."""
    global _thread
    while True:
        time.sleep(REFRESH)
        with _thread_lock:
            panels = list(_open)
            if not panels:
                _thread = None
                return
        _tick_all(panels)
        del panels  # held only while refreshing: a dropped panel can go


def _tick_all(panels: list[PanelStatus]) -> None:
    for panel in panels:
        try:
            panel._tick()
        except Exception:  # noqa: BLE001 - a status line must never print into a cell
            logger.debug("panel refresh failed", exc_info=True)


def _watch(panel: PanelStatus) -> None:
    """Add ``panel`` to the refreshed ones (one thread for all panels, started when needed)."""
    global _thread
    with _thread_lock:
        _open.add(panel)
        if _thread is None:
            _thread = threading.Thread(target=_refresher, name="nbexec-panel-refresh", daemon=True)
            _thread.start()


class PanelStatus:
    """The status part of ``ExecutorPanel``. The panel creates the widgets named below and
    provides ``_reload_session`` (refill the form from the session)."""

    status: Any
    last_table: Any
    widgets_available: bool
    _table: Any
    _last_label: Any
    _seen: str
    _closed: threading.Event
    _follow_lock = threading.RLock()

    def _reload_session(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _session_key() -> str:
        mode, options = session.current_mode()
        return repr((mode, sorted(options.items())))

    def _follow(self) -> None:
        """Follow the session within a second, whoever changes it: the session calls the panel
        on every change, and a light refresher redraws the status (cluster workers, runs going,
        the last run's counts) every ``REFRESH`` seconds until the panel is closed."""
        self._closed = threading.Event()
        self.refreshes = 0
        session.on_change(self._session_changed)
        _watch(self)

    def close(self) -> None:
        """Stop following the session (the refresher ends) and close the panel's widgets."""
        self._closed.set()
        with _thread_lock:
            _open.discard(self)

    def _session_changed(self) -> None:
        if self._closed.is_set():
            return
        if getattr(self, "_applying", False):  # the panel's own Apply: the form already matches
            self._seen = self._session_key()
            self.refresh_status()
        else:
            self.follow_session()

    def follow_session(self) -> None:
        """Show the session's executor: the form is reloaded when the session changed."""
        with self._follow_lock:
            key = self._session_key()
            if key != self._seen:
                self._seen = key
                self._reload_session()
            self.refresh_status()

    def _tick(self) -> None:
        """One refresh of the refresher thread: status line and the last run's table."""
        if self._closed.is_set():
            return
        self.refreshes += 1
        self.refresh_status()
        table = self._table
        if table is not None and table.run is not None:
            table.refresh()

    # --- status and last run -------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        """The status line's content: mode, workers, threads, memory, dashboard link, override."""
        status = session.status()
        lines = status.text().splitlines()
        executor = session.current()
        client = executor.dask_client if executor is not None else None
        if client is not None:
            from .dashboard import dashboard_link

            link = dashboard_link(client)
            lines = [ln for ln in lines if not ln.startswith("dashboard:")]
            if link:
                lines.append(f"dashboard: {link}")
        going = len(history.open_runs())
        if going:
            lines.append(f"runs going: {going} (%executor wait waits for them)")
        return lines + cluster_lines(running_cluster())

    def refresh_status(self) -> None:
        """Redraw the status line from ``nbexec.session.status()``."""
        parts = []
        for line in self.status_lines():
            key, _, value = line.partition(": ")
            if key == "dashboard":
                link = html.escape(value)
                parts.append(f'dashboard: <a href="{link}" target="_blank">{link}</a>')
            else:
                parts.append(html.escape(line))
        self.status.value = "<div class='nbexec-status'>" + "<br>".join(parts) + "</div>"
        controls = self.__dict__.get("controls")
        if controls is not None:
            controls.refresh()

    def _on_last_run(self, run: Any) -> None:
        if run is None:
            self.last_table.children = ()
        elif self.widgets_available:
            from .table import RunTable

            if self._table is None:
                self._table = RunTable(run)
            elif self._table.run is not run:
                self._table.set_run(run)
            else:
                self._table.refresh()
            self.last_table.children = (self._last_label, self._table)
        else:
            self.last_table.children = (Stub(value=render_html(run.snapshot())),)

    def refresh(self) -> None:
        """Redraw the status line and the last run's table."""
        self.refresh_status()
        self._on_last_run(session.last_run())
