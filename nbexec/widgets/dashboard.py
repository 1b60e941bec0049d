"""``nbexec.dashboard()``: the Dask dashboard's individual plots inline, or a task-stream chart.

For a Dask session (an executor with a ``client``) it shows iframes of ``/individual-<plot>`` and a
link to the full dashboard. The link: a user's own ``distributed.dashboard.link`` wins; otherwise,
behind JupyterHub with jupyter-server-proxy importable, ``{prefix}proxy/{port}/status``; otherwise
``http://host:port/status`` with the host the dashboard really listens on. For the other modes it
shows a bokeh task-stream chart of the last run, built from nbexec's own tracking.

The text/plain is ``nbexec dashboard: <plots>`` in every mode, so notebooks compare equal under
nbval whichever executor ran them.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
from collections.abc import Iterable
from typing import Any

from .. import widgets as _base

__all__ = ["dashboard", "dashboard_link", "plot_urls", "DashboardView", "DEFAULT_PLOTS"]

DEFAULT_PLOTS = ("task-stream", "progress", "workers-memory")
DEFAULT_LINK = "{scheme}://{host}:{port}/status"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_PLOT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _plot_name(name: str) -> str:
    name = str(name).strip().lstrip("/")
    name = name.removeprefix("individual-")
    if not _PLOT_NAME.match(name):
        raise ValueError(
            f"plot names look like 'task-stream' or 'workers-memory' (the dashboard's "
            f"/individual-<name> pages), got {name!r}"
        )
    return name


def _address_host(address: str) -> str | None:
    if address.startswith("inproc://"):
        return address[len("inproc://") :].split("/", 1)[0] or None
    try:
        from distributed.comm import get_address_host

        return get_address_host(address)
    except Exception:  # noqa: BLE001
        return None


def _bound_host(client: Any) -> str | None:
    """The host the dashboard listens on, when the scheduler runs in this process."""
    scheduler = getattr(getattr(client, "cluster", None), "scheduler", None)
    server = getattr(scheduler, "http_server", None)
    for sock in (getattr(server, "_sockets", None) or {}).values():
        try:
            host = sock.getsockname()[0]
        except (OSError, IndexError):
            continue
        if host not in ("0.0.0.0", "::", ""):
            return host
    return None


def _host_port(client: Any) -> tuple[str | None, int | None, bool]:
    """``(host, port, local)`` of the client's scheduler dashboard; port None if it has none."""
    # A connected Client keeps its scheduler's identity (services never change): no round trip.
    services = (getattr(client, "_scheduler_identity", None) or {}).get("services")
    try:
        if not services:
            services = client.scheduler_info(n_workers=0).get("services", {})
    except Exception:  # noqa: BLE001 - a scheduler that went away
        return None, None, False
    port = services.get("dashboard")
    bound = _bound_host(client)
    address = getattr(getattr(client, "scheduler", None), "address", "") or ""
    host = bound or _address_host(address)
    return host, port, bool(bound) or host in _LOOPBACK


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # e.g. sys.modules[name] is None
        return False


def dashboard_link(client: Any) -> str | None:
    """The full dashboard's URL for ``client`` (None if its scheduler has no dashboard)."""
    import dask

    host, port, local = _host_port(client)
    if port is None or host is None:
        return None
    host = _format_host(host)
    tls = dask.config.get("distributed.scheduler.dashboard.tls.cert", None)
    scheme = "https" if tls else "http"
    fallback = DEFAULT_LINK.format(scheme=scheme, host=host, port=port)
    template = dask.config.get("distributed.dashboard.link", DEFAULT_LINK)
    if template and template != DEFAULT_LINK:
        try:
            return template.format(**{**os.environ, "scheme": scheme, "host": host, "port": port})
        except (KeyError, IndexError, ValueError):  # e.g. a missing environment variable
            return fallback
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix and _importable("jupyter_server_proxy"):
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        target = str(port) if local else f"{host}:{port}"
        return f"{prefix}proxy/{target}/status"
    return fallback


def plot_urls(link: str, plots: Iterable[str]) -> list[str]:
    """URLs of the individual plots next to the dashboard ``link`` (``.../status``)."""
    base = link[: -len("/status")] if link.endswith("/status") else link.rsplit("/", 1)[0]
    return [f"{base}/individual-{_plot_name(p)}" for p in plots]


def _iframes(urls: list[str], height: int) -> str:
    return "".join(
        f'<iframe src="{html.escape(u)}" width="100%" height="{int(height)}" '
        'style="border:0;display:block" loading="lazy"></iframe>'
        for u in urls
    )


class DashboardView:
    """What ``dashboard()`` returns: iframes of Dask's plots or nbexec's task-stream chart."""

    def __init__(self, plots: tuple[str, ...], height: int):
        self.plots = plots
        self.height = height
        self.text = f"nbexec dashboard: {', '.join(plots)}"
        self.link: str | None = None
        self.urls: list[str] = []
        self.chart: Any = None
        self.message = ""
        self.widget: Any = None
        self.deferred = False

    def html(self) -> str:
        """The same view as HTML (for front ends without widgets)."""
        parts = ["<div class='nbexec-dashboard'><b>nbexec</b> dashboard"]
        if self.link:
            link = html.escape(self.link)
            parts.append(f' · <a href="{link}" target="_blank">open the full dashboard</a>')
        parts.append("</div>")
        if self.message:
            parts.append(f"<div>{html.escape(self.message)}</div>")
        if self.urls:
            parts.append(_iframes(self.urls, self.height))
        if self.chart is not None:
            parts.append(self.chart.svg())
        return "".join(parts)

    def refresh(self) -> None:
        """Redraw the task-stream chart from the run's tracking (no-op for Dask iframes)."""
        if self.chart is not None:
            self.chart.refresh()

    def close(self) -> None:
        """Close the view's widget models: the chart, its loader box and the loader (or the
        iframes' HTML), with their layout and style models; nothing of it stays registered."""
        widget, self.widget = self.widget, None
        box = getattr(widget, "_box", None)
        models = [*getattr(box, "children", ()), box, widget]
        for model in dict.fromkeys(m for m in models if m is not None):
            state = getattr(model, "_trait_values", {})
            for part in (model, state.get("layout"), state.get("style")):
                close = getattr(part, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:  # noqa: BLE001 - a closed comm: nothing left to free
                        pass

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.widget is not None and _base.in_kernel():
            return _base.with_text(self.widget._repr_mimebundle_(**kwargs), self.text)
        return {"text/plain": self.text, "text/html": self.html()}

    def __repr__(self) -> str:
        return self.text


def dashboard(
    plots: Iterable[str] | None = DEFAULT_PLOTS,
    height: int = 300,
    *,
    run: Any = None,
    widgets: bool | None = None,
) -> DashboardView:
    """A view of the dashboard plots for ``run``'s executor (default: the session's and last run).

    Dask: iframes of ``/individual-<plot>`` and a link to the full dashboard. Other modes: a
    task-stream chart (bokeh) of the run. Display it, or make it a cell's last expression.
    """
    if isinstance(plots, str):
        plots = (plots,)
    names = tuple(_plot_name(p) for p in (DEFAULT_PLOTS if plots is None else plots))
    view = DashboardView(names, height)
    ipywidgets = _base.ipywidgets_or_none() if widgets is not False else None
    if run is not None:
        executor = run.executor
    else:
        from ..session import current, last_run

        executor = current()
        if executor is None or executor.dask_client is None:
            run = last_run()
    client = executor.dask_client if executor is not None else None
    if client is not None:
        view.link = dashboard_link(client)
        if view.link:
            view.urls = plot_urls(view.link, names)
        else:
            view.message = "this Dask scheduler serves no dashboard"
        if ipywidgets is not None:
            view.widget = ipywidgets.HTML(view.html())
        return view
    if run is None or not hasattr(run, "tracker"):  # none yet, or only a finished run's snapshot
        view.message = "no run yet: the task stream shows the last run's tasks"
        if ipywidgets is not None:
            view.widget = ipywidgets.HTML(view.html())
        return view
    from .taskstream import TaskStream

    view.chart = TaskStream(run.tracker, height=height, widget=ipywidgets is not None)
    if view.chart.widget is not None:
        view.widget = view.chart.widget
    return view
