"""The live task table: ONE widget model (an anywidget ES module) showing ``render_html``.

The model has one synced trait, ``html``; the browser module swaps it into the page and keeps
open ``<details>`` open across redraws. The table holds its run weakly and keeps only the last
snapshot, so a finished run and its results are freed whatever views of it stay open. A refresh
reads one snapshot (aggregated per task name) and sends the HTML only when it changed.
"""

from __future__ import annotations

import weakref
from typing import Any

import anywidget
from traitlets import Int, Unicode

from .. import widgets as _base
from ..render import render_html, render_text
from ..snapshot import Snapshot

__all__ = ["RunTable", "ESM"]

ESM = """
function draw(model, el) {
  const open = Array.from(el.querySelectorAll("details")).map((d) => d.open);
  el.innerHTML = model.get("html");
  el.querySelectorAll("details").forEach((d, i) => { if (open[i]) d.open = true; });
}
export default {
  render({ model, el }) {
    el.classList.add("nbexec-live");
    draw(model, el);
    model.on("change:html", () => draw(model, el));
  },
};
"""


class RunTable(anywidget.AnyWidget):
    """The live table of one run; ``refresh()`` redraws it from the run's snapshot."""

    _esm = ESM
    html = Unicode("", help="the table as HTML (render_html(..., live=True))").tag(sync=True)
    max_rows = Int(50, help="task names shown as rows; the others are summarised in one line")

    def __init__(self, run: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.refreshes = 0
        self._ref: Any = None
        self._snapshot: Snapshot | None = None
        self.set_run(run)

    @property
    def run(self) -> Any:
        """The run shown, while something else keeps it alive (None after it was freed)."""
        return self._ref() if self._ref is not None else None

    @property
    def snapshot(self) -> Snapshot | None:
        """The last snapshot shown."""
        return self._snapshot

    def set_run(self, run: Any) -> None:
        """Show ``run`` instead (held weakly)."""
        try:
            self._ref = weakref.ref(run)
        except TypeError:  # an object without weak references: keep what it shows now
            self._ref = None
        self._snapshot = run.snapshot()
        self.refresh(self._snapshot)

    def refresh(self, snapshot: Snapshot | None = None) -> Snapshot | None:
        """Redraw from ``snapshot`` (default: the run's current one, or the last one kept)."""
        if snapshot is None:
            run = self.run
            snapshot = run.snapshot() if run is not None else self._snapshot
        if snapshot is None:
            return None
        self._snapshot = snapshot
        self.refreshes += 1
        html = render_html(snapshot, live=True, max_rows=self.max_rows)
        if html != self.html:
            self.html = html
        return snapshot

    def tick(self) -> None:
        """Redraw with a new snapshot (the elapsed time moves on)."""
        self.refresh()

    def close_all(self) -> None:
        """Close this model and its layout model (nothing of it stays registered)."""
        layout = self.__dict__.get("_trait_values", {}).get("layout")
        self.close()
        if layout is not None:
            layout.close()

    def _text(self) -> str:
        return render_text(self._snapshot) if self._snapshot is not None else "nbexec tasks: none"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if not _base.in_kernel() and self._snapshot is not None:
            return {"text/plain": self._text(), "text/html": render_html(self._snapshot)}
        return _base.with_text(super()._repr_mimebundle_(**kwargs), self._text())

    def __repr__(self) -> str:
        return self._text()
