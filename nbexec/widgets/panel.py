"""``nbexec.ExecutorPanel()``: a form bound to the session executor.

A mode selector, then only the fields that mode takes; Apply (through ``nbexec.session.use``) and
Stop; a status line; the last run's table; and the equivalent ``%executor ...`` line with a copy
button. In code: ``.mode`` (a widget whose ``.value`` is a mode), ``.apply()`` and ``.magic``.
Without ipywidgets the same object works from code and displays as text/HTML.
"""

from __future__ import annotations

import functools
import html
import json
import types
from pathlib import Path
from typing import Any

from .. import session
from .. import widgets as _base
from ..executors.base import Executor
from ..modes import validate
from ..options import MODES, format_line
from ..render import render_html
from . import live

__all__ = ["ExecutorPanel", "PANEL_TEXT"]

PANEL_TEXT = "nbexec executor panel"
_MODE_LABELS = {"local": "local (in the kernel)", "sync": "sync (Dask, one thread)",
                "threads": "threads (thread pool)", "processes": "processes (process pool)",
                "dask": "dask (Dask cluster)"}  # fmt: skip
_LOCAL_CLUSTER_NAMES = ("", "distributed.LocalCluster", "dask.distributed.LocalCluster",
                        "distributed.deploy.local.LocalCluster")  # fmt: skip
# name, widget class, default, label, placeholder
_FIELDS = (
    ("workers", "IntText", 0, "workers", "0 = default"),
    ("threads_per_worker", "IntText", 0, "threads/worker", "0 = default"),
    ("processes", "Checkbox", True, "worker processes", ""),
    ("memory_limit", "Text", "", "memory limit", "default, or e.g. 2GiB"),
    ("address", "Text", "", "scheduler", "empty: a new cluster; or tcp://host:8786"),
    ("cluster_class", "Text", "", "cluster class", "distributed.LocalCluster, dask_jobqueue.SLURMCluster, ..."),
    ("cluster_kwargs", "Textarea", "", "cluster kwargs", 'JSON, e.g. {"cores": 4, "memory": "8GiB"}'),
    ("adapt_min", "IntText", 0, "adapt min", ""),
    ("adapt_max", "IntText", 0, "adapt max", "0 = not adaptive"),
    ("timeout", "FloatText", 0.0, "timeout (s)", "0 = default (10 s)"),
)  # fmt: skip
_WIDE = ("cluster_kwargs", "cluster_class", "address")


class _Stub:
    """Stands in for an ipywidgets widget when ipywidgets is missing: it only holds values."""

    def __init__(self, children: Any = (), **kwargs: Any):
        self.children = tuple(children)
        self.value = kwargs.pop("value", None)
        self.disabled = False
        self.layout = types.SimpleNamespace(display=None)
        self.__dict__.update(kwargs)
        self._clicks: list = []

    def observe(self, handler: Any, names: Any = None) -> None:
        pass

    def on_click(self, handler: Any) -> None:
        self._clicks.append(handler)

    def click(self) -> None:
        for handler in list(self._clicks):
            handler(self)

    def add_class(self, name: str) -> None:
        pass


class _StubModule:
    def __getattr__(self, name: str) -> Any:
        if name == "Layout":
            return lambda **kw: types.SimpleNamespace(**{"display": None, **kw})
        return _Stub


@functools.cache
def _copy_button_class() -> type | None:
    try:
        import anywidget
        import traitlets
    except ImportError:
        return None

    class CopyButton(anywidget.AnyWidget):
        """A button that copies ``text`` to the clipboard (navigator.clipboard.writeText)."""

        _esm = Path(__file__).with_name("copy.js")
        text = traitlets.Unicode("", help="the text the button copies").tag(sync=True)

        def __repr__(self) -> str:
            return "nbexec copy button"

    return CopyButton


class ExecutorPanel:
    """A form that configures, starts and stops the session executor (see the module doc)."""

    def __init__(self) -> None:
        ipywidgets = _base.ipywidgets_or_none()
        self.widgets_available = ipywidgets is not None
        w = ipywidgets if ipywidgets is not None else _StubModule()
        self._w = w
        mode, options = session.current_mode()
        style = {"description_width": "9em"}
        self.mode = w.Dropdown(
            options=[(_MODE_LABELS[m], m) for m in MODES], value=mode if mode in MODES else "local",
            description="mode", style=style,
        )  # fmt: skip
        self.fields: dict[str, Any] = {}
        for name, cls, default, label, placeholder in _FIELDS:
            kwargs: dict[str, Any] = {"value": default, "description": label, "style": style}
            if placeholder:
                text_field = cls in ("Text", "Textarea")
                kwargs["placeholder" if text_field else "tooltip"] = placeholder
            if cls == "Checkbox":
                kwargs["indent"] = True
            width = "44em" if name in _WIDE else "22em"
            field = getattr(w, cls)(layout=w.Layout(width=width), **kwargs)
            self.fields[name] = field
            setattr(self, name, field)
        self._load(options)
        self.kwargs_error = w.HTML("")
        self.apply_button = w.Button(description="Apply", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop")
        self.apply_button.on_click(lambda _: self.apply())
        self.stop_button.on_click(lambda _: self.stop())
        self.message = w.HTML("")
        self.status = w.HTML("")
        self.magic_text = w.Text(
            value="", description="magic", disabled=False, style=style,
            layout=w.Layout(width="44em"),
        )  # fmt: skip
        copy_cls = _copy_button_class() if self.widgets_available else None
        self.copy_button = copy_cls() if copy_cls is not None else None
        self.last_table = w.VBox([])
        self._table: Any = None
        self._last_label = w.HTML("<b>last run</b>")
        magic_row = [self.magic_text] + ([self.copy_button] if self.copy_button else [])
        self.widget = w.VBox(
            [self.mode, *self.fields.values(), self.kwargs_error,
             w.HBox([self.apply_button, self.stop_button]), self.message, self.status,
             w.HBox(magic_row), self.last_table],
        )  # fmt: skip
        self.widget.add_class("nbexec-panel")
        for widget in (self.mode, *self.fields.values()):
            widget.observe(self._on_change, names="value")
        self.magic_text.observe(self._keep_magic, names="value")
        live.on_last_run(self._on_last_run)
        self._update()
        self.refresh()

    # --- form -> options -----------------------------------------------------------------------

    def _load(self, options: dict[str, Any]) -> None:
        """Fill the fields from the session's current options."""
        for name in ("workers", "threads_per_worker"):
            if isinstance(options.get(name), int):
                self.fields[name].value = options[name]
        for name in ("memory_limit", "address", "cluster_class"):
            if isinstance(options.get(name), (int, str)):
                self.fields[name].value = str(options[name])
        if options.get("processes") is False:
            self.processes.value = False
        if isinstance(options.get("cluster_kwargs"), dict):
            self.cluster_kwargs.value = json.dumps(options["cluster_kwargs"], sort_keys=True)
        if "adapt" in options:
            self.adapt_min.value, self.adapt_max.value = options["adapt"]
        if "timeout" in options:
            self.timeout.value = float(options["timeout"])

    def visible_fields(self) -> tuple[str, ...]:
        """The fields the chosen mode takes, given what is filled in (address, cluster class)."""
        mode = self.mode.value
        if mode in ("threads", "processes"):
            return ("workers",)
        if mode != "dask":
            return ()
        if str(self.address.value).strip():
            return ("address", "timeout")
        names = ["workers"]
        if str(self.cluster_class.value).strip() in _LOCAL_CLUSTER_NAMES:
            names += ["threads_per_worker", "processes", "memory_limit"]
        names += ["address", "cluster_class", "cluster_kwargs", "adapt_min", "adapt_max", "timeout"]
        return tuple(names)

    def form_options(self) -> tuple[dict[str, Any], dict[str, str]]:
        """``(options, errors)`` from the visible fields; fields left at their default are omitted."""
        visible = self.visible_fields()
        options: dict[str, Any] = {}
        errors: dict[str, str] = {}
        f = self.fields
        for name in ("workers", "threads_per_worker"):
            if name in visible and f[name].value:
                if f[name].value < 0:
                    errors[name] = f"must be a whole number >= 0, got {f[name].value}"
                else:
                    options[name] = int(f[name].value)
        if "processes" in visible and not f["processes"].value:
            options["processes"] = False
        for name in ("memory_limit", "address", "cluster_class"):
            text = str(f[name].value or "").strip()
            if name in visible and text:
                options[name] = text
        text = str(f["cluster_kwargs"].value or "").strip()
        if "cluster_kwargs" in visible and text:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                errors["cluster_kwargs"] = f"not valid JSON: {exc.msg} (line {exc.lineno})"
            else:
                if isinstance(value, dict):
                    options["cluster_kwargs"] = value
                else:
                    errors["cluster_kwargs"] = 'must be a JSON object such as {"cores": 4}'
        if "adapt_max" in visible and f["adapt_max"].value:
            options["adapt"] = (int(f["adapt_min"].value), int(f["adapt_max"].value))
        if "timeout" in visible and f["timeout"].value:
            options["timeout"] = float(f["timeout"].value)
        return options, errors

    @property
    def magic(self) -> str:
        """The ``%executor ...`` line equivalent to the form (fields with errors left out)."""
        options, _ = self.form_options()
        return "%executor " + format_line(self.mode.value, options)

    def _on_change(self, change: Any = None) -> None:
        self._update()

    def _keep_magic(self, change: Any = None) -> None:
        if self.magic_text.value != self.magic:  # selectable, but not editable
            self.magic_text.value = self.magic

    def _update(self) -> None:
        visible = self.visible_fields()
        for name, field in self.fields.items():
            field.layout.display = None if name in visible else "none"
        _, errors = self.form_options()
        error = errors.get("cluster_kwargs", "")
        self.kwargs_error.value = (
            f"<span style='color:#c62828'>cluster kwargs: {html.escape(error)}</span>"
            if error
            else ""
        )
        line = self.magic
        self.magic_text.value = line
        if self.copy_button is not None:
            self.copy_button.text = line

    # --- actions -------------------------------------------------------------------------------

    def _error(self, text: str) -> None:
        self.message.value = f"<span style='color:#c62828'>{html.escape(text)}</span>"

    def apply(self) -> Executor | None:
        """Start the form's executor as the session executor (as clicking Apply); None on error.

        On error the message shows in the panel and the previous session executor stays.
        """
        mode = self.mode.value
        options, errors = self.form_options()
        if errors:
            self._error("; ".join(f"{name}: {text}" for name, text in errors.items()))
            return None
        try:
            validate(mode, options)
        except ValueError as exc:
            self._error(str(exc))
            return None
        starting = "starting a Dask cluster…" if mode == "dask" and "address" not in options else ""
        if mode == "dask" and "address" in options:
            starting = f"connecting to {options['address']}…"
        self.message.value = f"<i>{html.escape(starting or 'starting…')}</i>"
        self.apply_button.disabled = self.stop_button.disabled = True
        try:
            executor = session.use(mode, **options)
        except Exception as exc:  # noqa: BLE001 - shown in the panel; the session is unchanged
            self._error(f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self.apply_button.disabled = self.stop_button.disabled = False
            self.refresh_status()
        self.message.value = ""
        return executor

    def stop(self) -> None:
        """Stop the session executor (as clicking Stop)."""
        try:
            session.stop()
        except Exception as exc:  # noqa: BLE001
            self._error(f"{type(exc).__name__}: {exc}")
        else:
            self.message.value = ""
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
        return lines

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
            self.last_table.children = (_Stub(value=render_html(run.snapshot())),)

    def refresh(self) -> None:
        """Redraw the status line and the last run's table."""
        self.refresh_status()
        self._on_last_run(live.last_run())

    # --- display -------------------------------------------------------------------------------

    def html(self) -> str:
        """The panel as static HTML: status, equivalent magic line and last run's table."""
        run = live.last_run()
        table = f"<div><b>last run</b>{render_html(run.snapshot())}</div>" if run else ""
        return (
            f"<div class='nbexec-panel'><b>nbexec executor</b>{self.status.value}"
            f"<div><code>{html.escape(self.magic)}</code></div>{table}</div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.widgets_available and _base.in_kernel():
            return _base.with_text(self.widget._repr_mimebundle_(**kwargs), PANEL_TEXT)
        return {"text/plain": PANEL_TEXT, "text/html": self.html()}

    def __repr__(self) -> str:
        return PANEL_TEXT
