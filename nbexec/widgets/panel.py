"""``nbexec.ExecutorPanel()``: a form bound to the session executor.

A mode selector, then only the fields that mode takes; Apply (through ``nbexec.session.use``) and
Stop; a status line; the last run's table; and the equivalent ``%executor ...`` line with a copy
button. In code: ``.mode`` (a widget whose ``.value`` is a mode), ``.apply()`` and ``.magic``.
Without ipywidgets the same object works from code and displays as text/HTML.
"""

from __future__ import annotations

import html
from typing import Any

from .. import session
from .. import widgets as _base
from ..config.modes import validate
from ..config.options import LOCAL_CLUSTER_ONLY, MODES
from ..core.render import render_html
from ..executors.base import Executor
from .cluster_controls import ClusterControls, preview_text
from .cluster_form import LABEL_WIDTH
from .panel_fields import MODE_LABELS, PanelFields
from .panel_parts import StubModule, copy_button_class
from .panel_status import PanelStatus

__all__ = ["ExecutorPanel", "PANEL_TEXT"]

PANEL_TEXT = "nbexec executor panel"
_RED = "<span style='color:#c62828'>{}</span>"


class ExecutorPanel(PanelFields, PanelStatus):
    """A form that configures, starts and stops the session executor (see the module doc).

    Its fields and the options they stand for are ``PanelFields``'; its status line, last run's
    table and following of the session are ``PanelStatus``'."""

    def __init__(self) -> None:
        ipywidgets = _base.ipywidgets_or_none()
        self.widgets_available = ipywidgets is not None
        w = ipywidgets if ipywidgets is not None else StubModule()
        self._w = w
        mode, options = session.current_mode()
        style = {"description_width": LABEL_WIDTH}
        self.mode = w.Dropdown(
            options=[(MODE_LABELS[m], m) for m in MODES], value=mode if mode in MODES else "local",
            description="mode", style=style,
        )  # fmt: skip
        top, bottom = self._build_fields(w, style)
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
        session.on_last_run(self._on_last_run)
        self._seen = self._session_key()
        self._follow()
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

    def _on_class(self, change: Any = None) -> None:
        self._update()

    def _keep_magic(self, change: Any = None) -> None:
        if self.magic_text.value != self.magic:  # selectable, but not editable
            self.magic_text.value = self.magic

    def _update(self, errors: dict[str, str] | None = None) -> None:
        if "magic_text" not in self.__dict__:
            return  # fields filled while the panel is built: __init__ ends with an _update
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

    # --- preview and actions -------------------------------------------------------------------

    def _checked(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Options and every error, the cluster class's own checks included."""
        options, errors = self.form_options()
        if not errors and self._form is not None and "cluster_class" in self.visible_fields():
            kwargs = dict(options.get("cluster_kwargs") or {})
            kwargs.update({k: options[k] for k in LOCAL_CLUSTER_ONLY if k in options})
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
        self._applying = True
        try:
            executor = session.use(mode, **options)
        except Exception as exc:  # noqa: BLE001 - shown in the panel; the session is unchanged
            self._error(f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self._applying = False
            self.apply_button.disabled = self.stop_button.disabled = False
            self.refresh_status()
        self.message.value = ""
        self._seen = self._session_key()
        return executor

    def stop(self) -> None:
        """Stop the session executor (as clicking Stop); the form keeps what was typed in it, so
        it can be changed and applied again."""
        self._applying = True  # the panel's own change: its form is not reloaded from the session
        try:
            session.stop()
        except Exception as exc:  # noqa: BLE001
            self._error(f"{type(exc).__name__}: {exc}")
        else:
            self.message.value = ""
        finally:
            self._applying = False
        self._seen = self._session_key()
        self.refresh_status()

    def scale(self, n: int) -> None:
        """Scale the running cluster to ``n`` workers (stopping adaptive scaling), as
        distributed's cluster widget does."""
        self.controls.scale(n)

    def adapt(self, minimum: int, maximum: int) -> None:
        """Make the running cluster adaptive between ``minimum`` and ``maximum`` workers."""
        self.controls.adapt(minimum, maximum)

    def close(self) -> None:
        """Stop following the session and close the panel's widget."""
        super().close()
        close = getattr(self.widget, "close", None)
        if close is not None:
            close()

    # --- display -------------------------------------------------------------------------------

    def _last_run_html(self) -> str:
        run = session.last_run()
        if not run:
            return ""
        return f"<div style='margin-top:4px'><b>last run</b>{render_html(run.snapshot())}</div>"

    def html(self) -> str:
        """The panel as static HTML: status, equivalent magic line and last run's table (its
        whole view without ipywidgets)."""
        return (
            f"<div class='nbexec-panel'><b>nbexec executor</b>{self.status.value}"
            f"<div><code>{html.escape(self.magic)}</code></div>{self._last_run_html()}</div>"
        )

    def static_html(self) -> str:
        """What the widget's output keeps for readers without a kernel: what the panel is, and
        the last run's table. nbval compares it run after run (also under ``NBEXEC_EXECUTOR``),
        so it holds nothing that depends on the session's executor, cluster or override."""
        return (
            "<div class='nbexec-panel' style='line-height:1.4'><b>nbexec executor panel</b>"
            "<div>A form that chooses, starts and stops the session's executor (mode, workers, "
            "cluster); it is live when the notebook runs in a kernel.</div>"
            f"{self._last_run_html()}</div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if self.widgets_available and _base.in_kernel():
            bundle = _base.with_text(self.widget._repr_mimebundle_(**kwargs), PANEL_TEXT)
            data = bundle[0] if isinstance(bundle, tuple) else bundle
            data["text/html"] = self.static_html()  # the view a saved notebook keeps
            return bundle
        return {"text/plain": PANEL_TEXT, "text/html": self.html()}

    def __repr__(self) -> str:
        return PANEL_TEXT
