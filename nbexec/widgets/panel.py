"""``nbexec.ExecutorPanel()``: a form bound to the session executor.

A mode selector, then only the fields that mode takes; Apply (through ``nbexec.session.use``) and
Stop; a status line; the last run's table; and the equivalent ``%executor ...`` line with a copy
button. In code: ``.mode`` (a widget whose ``.value`` is a mode), ``.apply()`` and ``.magic``.
Without ipywidgets the same object works from code and displays as text/HTML.
"""

from __future__ import annotations

import html
import json
import sys
import weakref
from typing import Any

from .. import session
from .. import widgets as _base
from ..executors.base import Executor
from ..modes import validate
from ..options import MODES, format_line
from ..render import render_html
from . import cluster_spec, live
from .cluster_controls import ClusterControls, cluster_lines, preview_text, running_cluster
from .cluster_form import ClusterForm, ErrorLabels, number_text
from .panel_parts import Stub, StubModule, copy_button_class

__all__ = ["ExecutorPanel", "PANEL_TEXT"]

PANEL_TEXT = "nbexec executor panel"
_MODE_LABELS = {"local": "local (in the kernel)", "sync": "sync (Dask, one thread)",
                "threads": "threads (thread pool)", "processes": "processes (process pool)",
                "dask": "dask (Dask cluster)"}  # fmt: skip
# name, label, placeholder: the executor's own fields (the cluster class's come from its form)
_FIELDS = (
    ("workers", "workers", "default: one per core"),
    ("address", "scheduler", "empty: a new cluster; or tcp://host:8786"),
    ("cluster_class", "cluster class", "a distributed.deploy.Cluster subclass, by dotted name"),
    ("cluster_kwargs", "more kwargs", 'JSON: keywords the form does not list'),
    ("adapt_min", "adapt min", "minimum workers"),
    ("adapt_max", "adapt max", "empty: not adaptive"),
    ("timeout", "timeout (s)", "default: 10"),
)  # fmt: skip
_WIDE = ("cluster_kwargs", "cluster_class", "address")
_RED = "<span style='color:#c62828'>{}</span>"


class ExecutorPanel:
    """A form that configures, starts and stops the session executor (see the module doc)."""

    def __init__(self) -> None:
        ipywidgets = _base.ipywidgets_or_none()
        self.widgets_available = ipywidgets is not None
        w = ipywidgets if ipywidgets is not None else StubModule()
        self._w = w
        mode, options = session.current_mode()
        style = {"description_width": "9em"}
        self.mode = w.Dropdown(
            options=[(_MODE_LABELS[m], m) for m in MODES], value=mode if mode in MODES else "local",
            description="mode", style=style,
        )  # fmt: skip
        self._own: dict[str, Any] = {}
        for name, label, placeholder in _FIELDS:
            layout = w.Layout(width="44em" if name in _WIDE else "22em")
            kwargs: dict[str, Any] = {"description": label, "style": style, "layout": layout}
            if name == "cluster_class":
                field = w.Combobox(
                    value=cluster_spec.LOCAL_CLUSTER, options=cluster_spec.installed_cluster_classes(),
                    placeholder=placeholder, ensure_option=False, continuous_update=False, **kwargs,
                )  # fmt: skip
            elif name == "cluster_kwargs":
                field = w.Textarea(value="", placeholder=placeholder, rows=2, **kwargs)
            elif name in ("address",):
                field = w.Text(value="", placeholder=placeholder, **kwargs)
            else:
                field = number_text(w, value="", placeholder=placeholder, **kwargs)
            self._own[name] = field
        top, bottom = w.VBox([]), w.VBox([])
        self._labels = (
            ErrorLabels(w, top, [(n, self._own[n]) for n in ("workers", "address", "cluster_class")]),
            ErrorLabels(w, bottom, [(n, self._own[n]) for n in ("cluster_kwargs", "adapt_min",
                                                                 "adapt_max", "timeout")]),
        )  # fmt: skip
        self._forms: dict[str, ClusterForm] = {}
        self._form: ClusterForm | None = None
        self._form_name: str | None = None  # the class the form was built for (built when shown)
        self._class_error = ""
        self.cluster_form_box = w.VBox([])
        self._load(options)
        self.apply_button = w.Button(description="Apply", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop")
        self.preview_button = w.Button(description="Preview", icon="eye",
                                       tooltip="what Apply would start, without starting it")  # fmt: skip
        self.apply_button.on_click(lambda _: self.apply())
        self.stop_button.on_click(lambda _: self.stop())
        self.preview_button.on_click(lambda _: self._preview_clicked())
        self.preview_area = w.HTML("")
        self.preview_area.add_class("nbexec-preview")
        self.controls = ClusterControls(w, self)
        self.message = w.HTML("")
        self.status = w.HTML("")
        self.magic_text = w.Text(
            value="", description="magic", disabled=False, style=style,
            layout=w.Layout(width="44em"),
        )  # fmt: skip
        copy_cls = copy_button_class() if self.widgets_available else None
        self.copy_button = copy_cls() if copy_cls is not None else None
        self.last_table = w.VBox([])
        self._table: Any = None
        self._last_label = w.HTML("<b>last run</b>")
        magic_row = [self.magic_text] + ([self.copy_button] if self.copy_button else [])
        self.widget = w.VBox(
            [self.mode, top, self.cluster_form_box, bottom, w.HBox([self.apply_button, self.stop_button, self.preview_button]),
             self.message, self.preview_area, self.status, self.controls.widget,
             w.HBox(magic_row), self.last_table],
        )  # fmt: skip
        self.widget.add_class("nbexec-panel")
        for widget in (self.mode, *self._own.values()):
            widget.observe(self._on_change, names="value")
        self._own["cluster_class"].observe(self._on_class, names="value")
        self.magic_text.observe(self._keep_magic, names="value")
        live.on_last_run(self._on_last_run)
        self._seen = self._session_key()
        self._follow_cells()
        self._update()
        self.refresh()

    def __getattr__(self, name: str) -> Any:
        """``panel.workers``, ``panel.cores``, ...: the field of that name (see ``.fields``)."""
        fields = self.__dict__.get("_own")
        if fields is not None and not name.startswith("_"):
            found = self.fields.get(name)
            if found is not None:
                return found
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def fields(self) -> dict[str, Any]:
        """The field widgets by parameter name: the executor's, then the cluster class's."""
        self._ensure_form()
        fields = dict(self._own)
        if self._form is not None:
            for name, widget in self._form.fields.items():
                fields.setdefault(name, widget)
        return fields

    @property
    def cluster_class(self) -> Any:
        """The cluster class widget: ``.value`` a dotted name, ``.options`` the installed ones."""
        return self._own["cluster_class"]

    # --- the cluster class's form --------------------------------------------------------------

    def _ensure_form(self) -> None:
        """Build the chosen class's form once it is shown (a local-mode panel builds none)."""
        if self.mode.value == "dask" and self._form_name != self.cluster_class.value:
            self._set_class(self.cluster_class.value)

    def _set_class(self, name: str) -> None:
        self._form_name = name
        name = str(name or "").strip() or cluster_spec.LOCAL_CLUSTER
        form = self._forms.get(name)
        error = ""
        if form is None:
            try:
                form = ClusterForm(self._w, cluster_spec.describe(name))
            except ValueError as exc:
                error = str(exc)
            else:
                self._forms[name] = form
                for widget in form.fields.values():
                    widget.observe(self._on_change, names="value")
        self._form = form
        self._class_error = error
        self.cluster_form_box.children = (form.widget,) if form is not None else ()

    def _on_class(self, change: Any = None) -> None:
        self._update()

    # --- form -> options -----------------------------------------------------------------------

    def _load(self, options: dict[str, Any]) -> None:
        """Fill the fields from the session's current options."""
        own = self._own
        for name in ("workers", "address", "timeout"):
            if isinstance(options.get(name), (int, float, str)):
                own[name].value = str(options[name])
        if isinstance(options.get("cluster_class"), str):
            own["cluster_class"].value = options["cluster_class"]
        self._ensure_form()
        if "adapt" in options:
            own["adapt_min"].value, own["adapt_max"].value = (str(v) for v in options["adapt"])
        kwargs = dict(options.get("cluster_kwargs") or {})
        kwargs.update({k: options[k] for k in cluster_spec.LOCAL_FLAGS if k in options})
        rest = self._form.load(kwargs) if self._form is not None else kwargs
        if rest:
            own["cluster_kwargs"].value = json.dumps(rest, sort_keys=True)

    def visible_fields(self) -> tuple[str, ...]:
        """The fields the chosen mode takes, given what is filled in (address, cluster class)."""
        mode = self.mode.value
        if mode in ("threads", "processes"):
            return ("workers",)
        if mode != "dask":
            return ()
        if str(self.address.value).strip():
            return ("address", "timeout")
        form = tuple(self._form.fields) if self._form is not None else ()
        return ("workers", "address", "cluster_class", *form, "cluster_kwargs", "adapt_min",
                "adapt_max", "timeout")  # fmt: skip

    def _number(self, name: str, kind: type, errors: dict[str, str]) -> Any:
        text = str(self._own[name].value or "").strip()
        if not text:
            return None
        try:
            value = kind(text)
        except ValueError:
            errors[name] = f"expected a {'whole ' if kind is int else ''}number, got {text!r}"
            return None
        if value < 0 or (name == "timeout" and not value > 0):
            errors[name] = f"must be {'> 0' if name == 'timeout' else '>= 0'}, got {text}"
            return None
        return value

    def form_options(self) -> tuple[dict[str, Any], dict[str, str]]:
        """``(options, errors)`` from the visible fields; fields left empty are omitted."""
        visible = self.visible_fields()
        options: dict[str, Any] = {}
        errors: dict[str, str] = {}
        if "workers" in visible and (n := self._number("workers", int, errors)) is not None:
            options["workers"] = n
        kwargs: dict[str, Any] = {}
        if "cluster_class" in visible:
            if self._class_error:
                errors["cluster_class"] = self._class_error
            if self._form is not None:
                kwargs, form_errors = self._form.values()
                errors.update(form_errors)
            extra = self._extra_kwargs(kwargs, errors)
            if self._form is not None and self._form.spec.is_local:
                for name in cluster_spec.LOCAL_FLAGS:
                    if name in kwargs:
                        options[name] = kwargs.pop(name)
            kwargs.update(extra)
        address = str(self.address.value or "").strip()
        if "address" in visible and address:
            options["address"] = address
        name = str(self.cluster_class.value or "").strip()
        if "cluster_class" in visible and not cluster_spec.is_local_cluster_name(name):
            options["cluster_class"] = name
        if kwargs:
            options["cluster_kwargs"] = kwargs
        if "adapt_max" in visible:
            lo = self._number("adapt_min", int, errors)
            hi = self._number("adapt_max", int, errors)
            if hi is not None:
                options["adapt"] = (lo or 0, hi)
        if "timeout" in visible and (t := self._number("timeout", float, errors)) is not None:
            options["timeout"] = t
        return options, errors

    def _extra_kwargs(self, kwargs: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
        text = str(self._own["cluster_kwargs"].value or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            errors["cluster_kwargs"] = f"not valid JSON: {exc.msg} (line {exc.lineno})"
            return {}
        if not isinstance(value, dict):
            errors["cluster_kwargs"] = 'must be a JSON object such as {"cores": 4}'
            return {}
        twice = sorted(set(value) & set(kwargs))
        if twice:
            errors["cluster_kwargs"] = f"{', '.join(twice)} set both here and in the form"
            return {}
        return value

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

    def _update(self, errors: dict[str, str] | None = None) -> None:
        self._ensure_form()
        visible = self.visible_fields()
        for name, field in self._own.items():
            field.layout.display = None if name in visible else "none"
        self.cluster_form_box.layout.display = None if "cluster_class" in visible else "none"
        if errors is None:
            errors = self.form_options()[1]
        self._show_errors(errors)
        line = self.magic
        self.magic_text.value = line
        if self.copy_button is not None:
            self.copy_button.text = line

    def _show_errors(self, errors: dict[str, str]) -> None:
        for labels in self._labels:
            labels.show(errors, prefix=True)
        if self._form is not None:
            self._form.show_errors(errors)

    def error_text(self, name: str) -> str:
        """The error shown next to field ``name`` (HTML), "" when none."""
        own = "".join(labels.text(name) for labels in self._labels)
        return own or (self._form.error_text(name) if self._form is not None else "")

    # --- preview and actions -------------------------------------------------------------------

    def _checked(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Options and every error, the cluster class's own checks included."""
        options, errors = self.form_options()
        if not errors and self._form is not None and "cluster_class" in self.visible_fields():
            kwargs = dict(options.get("cluster_kwargs") or {})
            kwargs.update({k: options[k] for k in cluster_spec.LOCAL_FLAGS if k in options})
            errors = self._form.spec.check(kwargs)
        self._update(errors)
        return options, errors

    def preview(self) -> str:
        """What Apply would start, without starting it: the job script of a job-queue cluster,
        else the equivalent Python. ValueError (also shown next to the fields) if a value is bad."""
        options, errors = self._checked()
        if errors:
            raise ValueError("; ".join(f"{name}: {text}" for name, text in errors.items()))
        text = preview_text(self.mode.value, options, self._form)
        self.preview_area.value = f"<pre class='nbexec-preview-text'>{html.escape(text)}</pre>"
        return text

    def _preview_clicked(self) -> None:
        try:
            self.preview()
        except ValueError as exc:
            self._error(str(exc))
            self.preview_area.value = ""
        else:
            self.message.value = ""

    def _error(self, text: str) -> None:
        self.message.value = _RED.format(html.escape(text))

    def apply(self) -> Executor | None:
        """Start the form's executor as the session executor (as clicking Apply); None on error.

        On error the message shows in the panel and the previous session executor stays.
        """
        mode = self.mode.value
        options, errors = self._checked()
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
        self._seen = self._session_key()
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

    def scale(self, n: int) -> None:
        """Scale the running cluster to ``n`` workers (stopping adaptive scaling), as
        distributed's cluster widget does."""
        self.controls.scale(n)

    def adapt(self, minimum: int, maximum: int) -> None:
        """Make the running cluster adaptive between ``minimum`` and ``maximum`` workers."""
        self.controls.adapt(minimum, maximum)

    # --- following the session --------------------------------------------------------------

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
            mode, options = session.current_mode()
            for name, field in self._own.items():
                field.value = cluster_spec.LOCAL_CLUSTER if name == "cluster_class" else ""
            self._forms, self._form, self._form_name = {}, None, None
            self.mode.value = mode if mode in MODES else "local"
            self._load(options)
            self._update()
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
        if "controls" in self.__dict__:
            self.controls.refresh()

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
