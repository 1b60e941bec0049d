"""The executor panel's fields: the mode's own fields, the cluster class's form, and the options
they stand for (``form_options``, ``magic``), with errors by field name."""

from __future__ import annotations

import json
from typing import Any

from .. import session
from ..config.options import (
    LOCAL_CLUSTER_ONLY,
    MODE_HELP,
    MODE_OPTIONS,
    MODES,
    TIMEOUT_DEFAULT,
    format_line,
)
from ..executors._cluster_class import names_local_cluster
from . import cluster_spec
from .cluster_form import ClusterForm, ErrorLabels, number_text

__all__ = ["MODE_LABELS", "PanelFields"]

MODE_LABELS = {mode: f"{mode} ({help})" for mode, help in MODE_HELP.items()}
# name, label, placeholder: the executor's own fields (the cluster class's come from its form)
_FIELDS = (
    ("workers", "workers", "default: one per core"),
    ("address", "scheduler", "empty: a new cluster; or tcp://host:8786"),
    ("cluster_class", "cluster class", "a distributed.deploy.Cluster subclass, by dotted name"),
    ("cluster_kwargs", "more kwargs", 'JSON: keywords the form does not list'),
    ("adapt_min", "adapt min", "minimum workers"),
    ("adapt_max", "adapt max", "empty: not adaptive"),
    ("timeout", "timeout (s)", f"default: {TIMEOUT_DEFAULT}"),
)  # fmt: skip
_WIDE = ("cluster_kwargs", "cluster_class", "address")


class PanelFields:
    """The fields part of ``ExecutorPanel``: builds the fields, shows those the mode takes, and
    turns them into executor options. The panel provides ``mode`` and ``_update``."""

    mode: Any
    _w: Any

    def _build_fields(self, w: Any, style: dict[str, str]) -> tuple[Any, Any]:
        """Create the executor's own fields; return the boxes above and below the class's form."""
        self._own: dict[str, Any] = {}
        for name, label, placeholder in _FIELDS:
            layout = w.Layout(width="44em" if name in _WIDE else "25em")
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
        return top, bottom

    def _update(self, errors: dict[str, str] | None = None) -> None:
        raise NotImplementedError  # the panel redraws fields, errors and the magic line

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

    def _on_change(self, change: Any = None) -> None:
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
        kwargs.update({k: options[k] for k in LOCAL_CLUSTER_ONLY if k in options})
        rest = self._form.load(kwargs) if self._form is not None else kwargs
        if rest:
            own["cluster_kwargs"].value = json.dumps(rest, sort_keys=True)

    def _reload_session(self) -> None:
        """Empty the fields, then fill them from the session's current mode and options."""
        mode, options = session.current_mode()
        for name, field in self._own.items():
            field.value = cluster_spec.LOCAL_CLUSTER if name == "cluster_class" else ""
        self._forms, self._form, self._form_name = {}, None, None
        self.mode.value = mode if mode in MODES else "local"
        self._load(options)
        self._update()

    def visible_fields(self) -> tuple[str, ...]:
        """The fields the chosen mode takes, given what is filled in (address, cluster class)."""
        mode = self.mode.value
        if mode != "dask":
            return tuple(name for name in MODE_OPTIONS.get(mode, ()) if name in self._own)
        if str(self._own["address"].value).strip():
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
                for name in LOCAL_CLUSTER_ONLY:
                    if name in kwargs:
                        options[name] = kwargs.pop(name)
            kwargs.update(extra)
        address = str(self._own["address"].value or "").strip()
        if "address" in visible and address:
            options["address"] = address
        name = str(self.cluster_class.value or "").strip()
        if "cluster_class" in visible and not names_local_cluster(name):
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

    def _show_errors(self, errors: dict[str, str]) -> None:
        for labels in self._labels:
            labels.show(errors, prefix=True)
        if self._form is not None:
            self._form.show_errors(errors)

    def error_text(self, name: str) -> str:
        """The error shown next to field ``name`` (HTML), "" when none."""
        own = "".join(labels.text(name) for labels in self._labels)
        return own or (self._form.error_text(name) if self._form is not None else "")
