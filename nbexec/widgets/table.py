"""The live task table: ONE widget model (an anywidget ES module) showing ``render_html``.

The model syncs ``html``, which the browser module swaps into the page (keeping open
``<details>`` open across redraws), and ``running``, which shows a "cancel run" button; a click
sends ``{"event": "cancel"}`` and the kernel calls ``Run.cancel()``. The table holds its run weakly and keeps only the last
snapshot, so a finished run and its results are freed whatever views of it stay open. A refresh
reads one snapshot (aggregated per task name) and sends the HTML only when it changed.
"""

from __future__ import annotations

import weakref
from typing import Any

import anywidget
from traitlets import Bool, Int, Unicode

from .. import widgets as _base
from ..core.render import render_html, render_text
from ..core.snapshot import Snapshot

__all__ = ["RunTable", "ESM"]

ESM = """
function draw(model, box) {
  const open = Array.from(box.querySelectorAll("details")).map((d) => d.open);
  box.innerHTML = model.get("html");
  box.querySelectorAll("details").forEach((d, i) => { if (open[i]) d.open = true; });
}
export default {
  render({ model, el }) {
    el.classList.add("nbexec-live");
    const box = document.createElement("div");
    const cancel = document.createElement("button");
    cancel.className = "nbexec-cancel";
    cancel.textContent = "cancel run";
    cancel.title = "cancel this run's tasks that have not ended";
    cancel.addEventListener("click", () => {
      cancel.disabled = true;
      model.send({ event: "cancel" });
    });
    const shown = () => { cancel.style.display = model.get("running") ? "" : "none"; };
    el.append(box, cancel);
    draw(model, box);
    shown();
    model.on("change:html", () => draw(model, box));
    model.on("change:running", shown);
  },
};
"""


class RunTable(anywidget.AnyWidget):
    """The live table of one run; ``refresh()`` redraws it from the run's snapshot."""

    _esm = ESM
    html = Unicode("", help="the table as HTML (render_html(..., live=True))").tag(sync=True)
    running = Bool(False, help="the run is going (the cancel button shows)").tag(sync=True)
    max_rows = Int(50, help="task names shown as rows; the others are summarised in one line")

    def __init__(self, run: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.refreshes = 0
        self._ref: Any = None
        self._snapshot: Snapshot | None = None
        self.cancels = 0  # tasks cancelled from the button
        self.on_msg(self._on_message)
        self.set_run(run)

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        """The browser's "cancel run" button: cancel the run's tasks that have not ended."""
        if not isinstance(content, dict) or content.get("event") != "cancel":
            return
        run = self.run
        if run is not None and self.running:
            self.cancels += run.cancel()
            self.refresh()

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
        running = not snapshot.finished and self.run is not None
        if running != self.running:
            self.running = running
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
