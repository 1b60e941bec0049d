"""The widgets of a cluster class's form, built from a ``ClusterSpec`` (see ``cluster_spec``).

One field per parameter, typed: a checkbox for a flag with a True/False default, a default/yes/no
choice for a flag whose default is None, a text box for numbers, sizes, walltimes and text (empty
means "the default", shown as the placeholder — never a made-up 0), a text area for lists (one
item per line) and mappings (JSON). Each field's tooltip is the docstring's help. Errors show next
to the field. Parameters no docstring documents sit under "more options".
"""

from __future__ import annotations

import html
from functools import cache
from typing import Any

from .cluster_spec import UNSET, ClusterSpec, FieldSpec

__all__ = ["ClusterForm", "ErrorLabels", "number_text", "ERROR_STYLE", "LABEL_WIDTH"]

ERROR_STYLE = "color:#c62828"
#: The one label column of the panel: its own rows, the cluster class's form and the controls.
LABEL_WIDTH = "12em"
_STYLE = {"description_width": LABEL_WIDTH}


@cache
def _number_text_class(w: Any) -> Any:
    """A Text widget whose value may be set to a number from code (kept as its text)."""
    try:
        import traitlets
    except ImportError:
        return w.Text
    if not (isinstance(w.Text, type) and issubclass(w.Text, traitlets.HasTraits)):
        return w.Text  # the panel's stand-in module without ipywidgets

    class NumberText(w.Text):
        value = traitlets.CUnicode("", help="the field's text; empty means the default").tag(
            sync=True
        )

    return NumberText


def number_text(w: Any, **kwargs: Any) -> Any:
    """A text box for a number that shows its default as a placeholder (see the module doc)."""
    cls = _number_text_class(w)
    if "value" in kwargs and kwargs["value"] is not None and cls is not w.Text:
        kwargs["value"] = str(kwargs["value"])
    return cls(**kwargs)


def _widget(w: Any, spec: FieldSpec, layout: Any, styles: dict[str, Any]) -> Any:
    # ipywidgets 8 puts ``tooltip`` on a text box only when it has no description, so the help
    # also goes on the label as a title (HTML descriptions are sanitized; title is kept).
    label = f'<span title="{html.escape(spec.tooltip)}">{html.escape(spec.name)}</span>'
    common = {"description": label, "description_allow_html": True, "tooltip": spec.tooltip,
              "layout": layout}  # fmt: skip
    if spec.kind == "bool" and isinstance(spec.default, bool):
        return w.Checkbox(value=spec.default, indent=True, style=_STYLE, **common)
    if spec.kind == "bool":
        # "" for the default: a Dropdown whose value is None shows nothing selected
        choices = [(spec.placeholder, ""), ("yes", True), ("no", False)]
        return w.Dropdown(options=choices, value="", style=_STYLE, **common)
    if spec.kind in ("list", "dict"):
        hint = "one per line" if spec.kind == "list" else 'JSON, e.g. {"key": "value"}'
        placeholder = f"{spec.placeholder} ({hint})"
        return _shared_style(w.Textarea(value="", placeholder=placeholder, rows=2,
                                        style=styles.get("text", _STYLE), **common), styles)  # fmt: skip
    return _shared_style(number_text(w, value="", placeholder=spec.placeholder,
                                     style=styles.get("text", _STYLE), **common), styles)  # fmt: skip


def _shared_style(widget: Any, styles: dict[str, Any]) -> Any:
    """Keep the first text box's style model for the others (one model, not one per field)."""
    styles.setdefault("text", widget.style)
    return widget


class ErrorLabels:
    """Error labels shown under the fields of a VBox; a label exists only while it has an error
    (a form of 30 fields stays 30 widgets, not 90, in a saved notebook's widget state)."""

    def __init__(self, w: Any, box: Any, rows: list[tuple[str, Any]]):
        self._w = w
        self._box = box
        self._rows = rows
        self.labels: dict[str, Any] = {}
        box.children = tuple(widget for _, widget in rows)

    def show(self, errors: dict[str, str], prefix: bool = False) -> None:
        changed = False
        for name, _ in self._rows:
            text = errors.get(name, "")
            label = self.labels.get(name)
            if text and label is None:
                label = self.labels[name] = self._w.HTML("")
                changed = True
            if label is not None:
                shown = html.escape(f"{name}: {text}" if prefix else text)
                label.value = f"<span style='{ERROR_STYLE}'>{shown}</span>" if text else ""
        if changed:
            children = []
            for name, widget in self._rows:
                children.append(widget)
                if name in self.labels:
                    children.append(self.labels[name])
            self._box.children = tuple(children)

    def text(self, name: str) -> str:
        label = self.labels.get(name)
        return label.value if label is not None else ""


class ClusterForm:
    """The fields of one cluster class, with their error labels, as one widget (``.widget``)."""

    def __init__(self, w: Any, spec: ClusterSpec, width: str = "36em"):
        self.spec = spec
        self.fields: dict[str, Any] = {}
        layout = w.Layout(width=width)  # shared: the fields never change their own layout
        styles: dict[str, Any] = {}
        main: list[tuple[str, Any]] = []
        more: list[tuple[str, Any]] = []
        for field in spec.fields:
            widget = _widget(w, field, layout, styles)
            self.fields[field.name] = widget
            (more if field.advanced else main).append((field.name, widget))
        self.class_error = w.HTML("")
        summary = w.HTML(f"<i>{html.escape(spec.summary)}</i>" if spec.summary else "")
        main_box, more_box = w.VBox([]), w.VBox([])
        self._labels = [ErrorLabels(w, main_box, main), ErrorLabels(w, more_box, more)]
        children = [summary, main_box, self.class_error]
        if more:
            self.more = w.Accordion(children=[more_box])
            self.more.set_title(0, f"more options ({len(more)})")
            self.more.selected_index = None
            children.append(self.more)
        self.widget = w.VBox(children)
        self.widget.add_class("nbexec-cluster-form")

    def error_text(self, name: str) -> str:
        """The error shown next to field ``name`` (HTML), "" when none."""
        return "".join(labels.text(name) for labels in self._labels)

    def raw(self, name: str) -> Any:
        """The field's value as the widget holds it ("" / None mean the default)."""
        widget = self.fields[name]
        spec = self.spec.field(name)
        value = widget.value
        if spec is not None and spec.kind == "bool" and not isinstance(spec.default, bool):
            return None if value == "" else value
        if isinstance(value, bool) and spec is not None and value == spec.default:
            return None  # a checkbox left at its default is not passed
        return value

    def values(self) -> tuple[dict[str, Any], dict[str, str]]:
        """``(kwargs, errors)``: the fields that are set, typed; errors by field name."""
        kwargs: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for field in self.spec.fields:
            try:
                value = field.parse(self.raw(field.name))
            except ValueError as exc:
                errors[field.name] = str(exc)
                continue
            if value is not UNSET:
                kwargs[field.name] = value
        return kwargs, errors

    def load(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Fill the fields from ``kwargs``; returns what no field takes."""
        rest = {}
        for name, value in kwargs.items():
            spec = self.spec.field(name)
            if spec is None:
                rest[name] = value
                continue
            widget = self.fields[name]
            if spec.kind == "bool" and not isinstance(spec.default, bool):
                widget.value = "" if value is None else bool(value)
            elif isinstance(widget.value, bool):
                widget.value = bool(value)
            elif spec.kind == "list" and isinstance(value, (list, tuple)):
                widget.value = "\n".join(str(v) for v in value)
            elif spec.kind == "dict" or not isinstance(value, (str, int, float)):
                import json

                widget.value = json.dumps(value)
            else:
                widget.value = str(value)
        return rest

    def show_errors(self, errors: dict[str, str]) -> None:
        """Show each error next to its field (``"_class"``: under the fields)."""
        for labels in self._labels:
            labels.show(errors)
        text = errors.get("_class", "")
        self.class_error.value = (
            f"<span style='{ERROR_STYLE}'>{html.escape(text)}</span>" if text else ""
        )
