"""The executor panel's status part: the status line, the last run's table, and following the
session after every cell (whoever changed it)."""

from __future__ import annotations

import html
import sys
import weakref
from typing import Any

from .. import session
from ..core.render import render_html
from . import live
from .cluster_controls import cluster_lines, running_cluster
from .panel_parts import Stub

__all__ = ["PanelStatus"]


class PanelStatus:
    """The status part of ``ExecutorPanel``. The panel creates the widgets named below and
    provides ``_reload_session`` (refill the form from the session)."""

    status: Any
    last_table: Any
    widgets_available: bool
    _table: Any
    _last_label: Any
    _seen: str

    def _reload_session(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _session_key() -> str:
        mode, options = session.current_mode()
        return repr((mode, sorted(options.items())))

    def _follow_cells(self) -> None:
        """Follow the session after every cell, whoever changed it (IPython's post_run_cell)."""
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is None:
            return
        ref = weakref.ref(self)  # a panel nobody holds is not kept alive by the hook

        def follow(*_: Any) -> None:
            panel = ref()
            if panel is None:
                shell.events.unregister("post_run_cell", follow)
            else:
                panel.follow_session()

        shell.events.register("post_run_cell", follow)

    def follow_session(self) -> None:
        """Show the session's executor: the form is reloaded when the session changed."""
        key = self._session_key()
        if key != self._seen:
            self._seen = key
            self._reload_session()
        self.refresh_status()

    # --- status and last run -------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        """The status line's content: mode, workers, threads, memory, dashboard link, override."""
        status = session.status()
        lines = status.text().splitlines()
        executor = session.current()
        client = getattr(executor, "client", None)
        if client is not None:
            from .dashboard import dashboard_link

            link = dashboard_link(client)
            lines = [ln for ln in lines if not ln.startswith("dashboard:")]
            if link:
                lines.append(f"dashboard: {link}")
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
        self._on_last_run(live.last_run())
