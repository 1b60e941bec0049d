"""The panel's view of a running cluster: scale and adapt it live, and say what it is doing.

``ClusterControls`` acts as distributed's own cluster widget does: "Scale" stops adaptive scaling
and calls ``cluster.scale(n)``; "Adapt" calls ``cluster.adapt(minimum=..., maximum=...)``. It works
on the cluster the session executor created (``client.cluster``); a scheduler reached by address
belongs to whoever started it. ``preview_text`` says what Apply would start, starting nothing.
"""

from __future__ import annotations

from typing import Any

from .. import session
from .cluster_form import LABEL_WIDTH, ClusterForm, number_text

__all__ = ["ClusterControls", "preview_text", "running_cluster", "cluster_lines"]


def running_cluster() -> Any:
    """The cluster object behind the session executor's client, or None."""
    executor = session.current()
    client = executor.dask_client if executor is not None else None
    return getattr(client, "cluster", None)


def cluster_lines(cluster: Any) -> list[str]:
    """Status lines for a running cluster: its class, workers asked for, adaptive range."""
    if cluster is None:
        return []
    lines = [f"cluster: {type(cluster).__name__}"]
    requested = getattr(cluster, "requested", None)
    if requested is not None:
        lines[0] += f", {len(requested)} workers requested"
    adaptive = getattr(cluster, "_adaptive", None)
    if adaptive is not None and getattr(adaptive, "periodic_callback", None) is not None:
        lines.append(f"adaptive: {adaptive.minimum}–{adaptive.maximum} workers")
    return lines


def preview_text(mode: str, options: dict[str, Any], form: ClusterForm | None) -> str:
    """What Apply would start for ``mode``/``options``: a job script or the equivalent Python."""
    if mode != "dask":
        args = "".join(f", {k}={v!r}" for k, v in options.items())
        return f"import nbexec\n\nnbexec.use({mode!r}{args})"
    if "address" in options:
        timeout = f", timeout={options['timeout']!r}" if "timeout" in options else ""
        return f"from distributed import Client\n\nclient = Client({options['address']!r}{timeout})"
    if form is None:
        raise ValueError(f"cluster_class: cannot build {options.get('cluster_class')!r}")
    kwargs: dict[str, Any] = {k: options[k] for k in ("threads_per_worker", "processes", "memory_limit")
              if k in options}  # fmt: skip
    kwargs.update(options.get("cluster_kwargs") or {})
    return form.spec.preview(kwargs, options.get("workers"), options.get("adapt"))


def _int(text: Any, name: str, minimum: int) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"{name}: expected a whole number, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return value


class ClusterControls:
    """Scale / Adapt controls, shown while the session runs a cluster it created."""

    def __init__(self, w: Any, panel: Any):
        self._panel = panel
        style = {"description_width": LABEL_WIDTH}
        small = w.Layout(width="17em")
        self.scale_n = number_text(w, value="", description="scale to", placeholder="workers",
                                   style=style, layout=small)  # fmt: skip
        self.scale_button = w.Button(description="Scale", icon="arrows-v",
                                     tooltip="stop adaptive scaling and ask for this many workers")  # fmt: skip
        self.adapt_min = number_text(w, value="", description="adapt", placeholder="minimum",
                                     style=style, layout=small)  # fmt: skip
        self.adapt_max = number_text(
            w, value="", placeholder="maximum", layout=w.Layout(width="6em")
        )
        self.adapt_button = w.Button(description="Adapt", icon="sliders",
                                     tooltip="scale between minimum and maximum with the load")  # fmt: skip
        self.scale_button.on_click(lambda _: self._clicked(self._scale_clicked))
        self.adapt_button.on_click(lambda _: self._clicked(self._adapt_clicked))
        self.widget = w.VBox([
            w.HBox([self.scale_n, self.scale_button]),
            w.HBox([self.adapt_min, self.adapt_max, self.adapt_button]),
        ])  # fmt: skip
        self.widget.add_class("nbexec-cluster-controls")
        self.refresh()

    def _require(self) -> Any:
        cluster = running_cluster()
        if cluster is None:
            raise RuntimeError(
                "no running cluster to scale: Apply a dask mode that creates one (a scheduler "
                "reached with --address is scaled by whoever started it)"
            )
        return cluster

    def scale(self, n: int) -> None:
        """Stop adaptive scaling and ask the running cluster for ``n`` workers."""
        n = _int(n, "workers", 0)
        cluster = self._require()
        adaptive = getattr(cluster, "_adaptive", None)
        if adaptive is not None:
            adaptive.stop()
        cluster.scale(n)
        self._panel.refresh_status()

    def adapt(self, minimum: int, maximum: int) -> None:
        """Scale the running cluster between ``minimum`` and ``maximum`` workers with the load."""
        lo, hi = _int(minimum, "minimum", 0), _int(maximum, "maximum", 1)
        if lo > hi:
            raise ValueError(f"adapt: minimum {lo} is larger than maximum {hi}")
        self._require().adapt(minimum=lo, maximum=hi)
        self._panel.refresh_status()

    def _scale_clicked(self) -> None:
        self.scale(self.scale_n.value)

    def _adapt_clicked(self) -> None:
        self.adapt(self.adapt_min.value, self.adapt_max.value)

    def _clicked(self, action: Any) -> None:
        try:
            action()
        except (ValueError, RuntimeError) as exc:
            self._panel._error(str(exc))
        else:
            self._panel.message.value = ""

    def refresh(self) -> None:
        """Show the controls only while there is a running cluster to act on."""
        cluster = running_cluster()
        self.widget.layout.display = None if cluster is not None else "none"
        if cluster is not None:
            requested = getattr(cluster, "requested", None)
            if requested is not None:
                self.scale_n.placeholder = f"now {len(requested)}"
