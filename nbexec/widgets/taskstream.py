"""A task-stream chart from nbexec's own tracking: a bar per task from start to end, one lane per
thread, process or worker, coloured by task name.

Only the last ``LIMIT`` tasks are drawn, so a redraw costs the same for any run size. The chart is a
bokeh figure in jupyter_bokeh's ``BokehModel`` widget. jupyter_bokeh's JupyterLab extension renders
it with the page's BokehJS but does not ship BokehJS (it expects ``output_notebook()``: a CDN, or
megabytes inlined in the notebook). So displaying the chart shows a small loader (``bokehjs.js``)
first: it asks the kernel for bokeh's own ``bokeh.min.js``, which comes as a comm message buffer
(nothing fetched from a CDN, nothing stored in the notebook), and once BokehJS is in the page the
chart is added. Comm messages are handled while the kernel is idle, so the chart appears when the
cell that displayed it ends. Without widgets the same data renders as a small SVG.
"""

from __future__ import annotations

import functools
import html
import time
from pathlib import Path
from typing import Any

from .. import widgets as _base
from ..core.render import STATE_COLORS
from ..core.snapshot import STATES

__all__ = ["TaskStream", "stream_data", "LIMIT", "PALETTE"]

#: Most bars drawn: the most recently submitted tasks that started.
LIMIT = 5000
#: Colours per task name, in order of first appearance (bokeh's Category10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
_COLUMNS = ("start", "end", "lane", "name", "state")


def stream_data(tracker: Any, limit: int = LIMIT, now: float | None = None) -> dict[str, list]:
    """Columns for the last ``limit`` tasks that started: times in seconds since the first task."""
    data: dict[str, list] = {c: [] for c in _COLUMNS}
    n = len(tracker)
    if not n:
        return data
    now = time.time() if now is None else now
    t0 = tracker.record(0).submitted
    starts, ends, lanes, names, states = data.values()
    for i in range(max(0, n - limit), n):
        record = tracker.record(i)
        started, finished = record.started, record.finished
        if started is None:
            continue
        end = finished if finished is not None else now
        starts.append(started - t0)
        ends.append(max(end, started) - t0)
        lanes.append(record.where or "unknown")
        names.append(record.name)
        states.append(record.state)
    return data


def _lanes(data: dict[str, list]) -> list[str]:
    return sorted(set(data["lane"])) or ["no tasks yet"]


class TaskStream:
    """The task-stream chart of one run's ``tracker``; ``refresh()`` redraws from the tracking."""

    def __init__(self, tracker: Any, *, height: int = 300, limit: int = LIMIT, widget: bool = True):
        self.tracker = tracker
        self.height = height
        self.limit = limit
        self.names: list[str] = []
        self.refreshes = 0
        self.data = stream_data(tracker, limit)
        self.lanes = _lanes(self.data)
        self._add_names()
        self.figure: Any = None
        self.source: Any = None
        self.widget: Any = None
        self._mapper: Any = None
        if widget:
            self._build()

    def _add_names(self) -> bool:
        known = set(self.names)
        new = [n for n in dict.fromkeys(self.data["name"]) if n not in known]
        self.names += new
        return bool(new)

    def color(self, name: str) -> str:
        """The colour of task ``name`` (by order of first appearance)."""
        try:
            return PALETTE[self.names.index(name) % len(PALETTE)]
        except ValueError:
            return PALETTE[-3]

    def _columns(self) -> dict[str, Any]:
        import numpy as np

        d = self.data
        return {"start": np.asarray(d["start"], dtype=float), "end": np.asarray(d["end"], dtype=float),
                **{k: np.asarray(d[k], dtype=str) for k in ("lane", "name", "state")}}  # fmt: skip

    def _build(self) -> None:
        try:
            import jupyter_bokeh  # noqa: F401
            from bokeh.models import CategoricalColorMapper, ColumnDataSource, FactorRange
            from bokeh.plotting import figure
            from bokeh.transform import factor_cmap
        except ImportError:
            return
        self.source = ColumnDataSource(self._columns())
        fig = figure(
            y_range=FactorRange(factors=self.lanes),
            height=max(self.height, 120),
            sizing_mode="stretch_width",
            x_axis_label="seconds since the first task",
            tools="xpan,xwheel_zoom,box_zoom,reset,hover",
            tooltips=[
                ("task", "@name"),
                ("state", "@state"),
                ("where", "@lane"),
                ("from", "@start{0.000} s"),
                ("to", "@end{0.000} s"),
            ],  # fmt: skip
            toolbar_location="above",
            title="nbexec task stream",
        )
        self._mapper = CategoricalColorMapper(
            factors=self.names or ["-"], palette=list(PALETTE), nan_color="#7f7f7f"
        )
        fill = {"field": "name", "transform": self._mapper}
        line = factor_cmap("state", [STATE_COLORS[s] for s in STATES], list(STATES))
        fig.hbar(y="lane", left="start", right="end", height=0.8, fill_color=fill,
                 line_color=line, source=self.source)  # fmt: skip
        fig.ygrid.grid_line_color = None
        self.figure = fig
        self.widget = _chart_widget_class()(fig)

    def refresh(self) -> None:
        """Recompute the bars (last ``limit`` tasks) and push them to the chart."""
        self.refreshes += 1
        self.data = stream_data(self.tracker, self.limit)
        lanes = _lanes(self.data)
        new_names = self._add_names()
        if self.figure is None:
            self.lanes = lanes
            return
        if new_names:
            self._mapper.factors = list(self.names)
            self._mapper.palette = [self.color(n) for n in self.names]
        if lanes != self.lanes:
            self.lanes = lanes
            self.figure.y_range.factors = lanes
        self.source.data = self._columns()
        n = len(self.tracker)
        title = "nbexec task stream" + (
            f" (last {self.limit} of {n} tasks)" if n > self.limit else ""
        )
        if self.figure.title.text != title:
            self.figure.title.text = title

    def svg(self, width: int = 800, lane_height: int = 16, max_bars: int = 2000) -> str:
        """The chart as a static SVG (the most recent ``max_bars`` bars)."""
        data = self.data
        lanes = self.lanes
        start, end = data["start"][-max_bars:], data["end"][-max_bars:]
        span = max(end, default=0.0) or 1.0
        row = {lane: i for i, lane in enumerate(lanes)}
        label_w = 160
        scale = (width - label_w) / span
        height = lane_height * len(lanes) + 20
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 'style="font:11px sans-serif">']  # fmt: skip
        for lane, i in row.items():
            parts.append(f'<text x="2" y="{i * lane_height + 12}">{html.escape(lane[:28])}</text>')
        offset = len(data["start"]) - len(start)
        for k, (s, e) in enumerate(zip(start, end)):
            j = offset + k
            name, state = data["name"][j], data["state"][j]
            stroke = STATE_COLORS["failed"] if state == "failed" else self.color(name)
            parts.append(
                f'<rect x="{label_w + s * scale:.1f}" y="{row[data["lane"][j]] * lane_height + 2}" '
                f'width="{max((e - s) * scale, 1.0):.1f}" height="{lane_height - 4}" '
                f'fill="{self.color(name)}" stroke="{stroke}">'
                f"<title>{html.escape(name)} {state} {(e - s) * 1e3:.1f} ms</title></rect>"
            )
        parts.append(f'<text x="{label_w}" y="{height - 4}">0 s</text>')
        parts.append(f'<text x="{width - 60}" y="{height - 4}">{span:.2f} s</text></svg>')
        return "".join(parts)


@functools.cache
def _bokehjs() -> bytes:
    from bokeh.util.paths import bokehjsdir

    return (Path(bokehjsdir()) / "js" / "bokeh.min.js").read_bytes()


@functools.cache
def _loader_class() -> type | None:
    try:
        import anywidget
    except ImportError:
        return None

    class BokehJSLoader(anywidget.AnyWidget):
        """Puts BokehJS into the page (sent by the kernel on request), then calls ``on_ready``."""

        _esm = Path(__file__).with_name("bokehjs.js")

        def __init__(self, on_ready: Any, **kwargs: Any):
            super().__init__(**kwargs)
            self._on_ready = on_ready
            self.on_msg(self._message)

        def _message(self, _widget: Any, content: Any, _buffers: Any) -> None:
            kind = content.get("kind") if isinstance(content, dict) else None
            if kind == "want":
                self.send({"kind": "bokehjs"}, [_bokehjs()])
            elif kind == "ready":
                self._on_ready()

        def __repr__(self) -> str:
            return "nbexec BokehJS loader"

    return BokehJSLoader


@functools.cache
def _chart_widget_class() -> type:
    import ipywidgets
    from jupyter_bokeh import BokehModel

    class ChartWidget(BokehModel):
        """jupyter_bokeh's widget with nbexec's text/plain instead of the trait dump.

        Displayed, it shows a box holding the BokehJS loader; the chart joins it once the page has
        BokehJS (its render bundle is refreshed then, so it shows the figure as it is now).
        """

        def _shown(self) -> Any:
            box = getattr(self, "_box", None)
            loader_class = _loader_class()
            if box is None and loader_class is not None:
                box = self._box = ipywidgets.VBox([loader_class(self._add_chart)])
                box.add_class("nbexec-task-stream")
            return box

        def _add_chart(self) -> None:
            box = self._box
            if self not in box.children:
                self.render_bundle = self._model_to_traits(self._model)
                box.children = (*box.children, self)

        def close(self) -> None:
            # once: jupyter_bokeh's close fails when called again (as Widget.__del__ does)
            if not getattr(self, "_nbexec_closed", False):
                self._nbexec_closed = True
                super().close()

        def _repr_mimebundle_(self, **kwargs: Any) -> Any:
            box = self._shown()
            bundle = super()._repr_mimebundle_(**kwargs) if box is None else (
                box._repr_mimebundle_(**kwargs))  # fmt: skip
            return _base.with_text(bundle, "nbexec task stream")

        def __repr__(self) -> str:
            return "nbexec task stream"

    return ChartWidget
