"""Parts of the executor panel: stand-in widgets without ipywidgets, and the copy button."""

from __future__ import annotations

import functools
import types
from pathlib import Path
from typing import Any

__all__ = ["Stub", "StubModule", "copy_button_class"]


class Stub:
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

    def set_title(self, index: int, title: str) -> None:
        pass


class StubModule:
    def __getattr__(self, name: str) -> Any:
        if name == "Layout":
            return lambda **kw: types.SimpleNamespace(**{"display": None, **kw})
        return Stub


@functools.cache
def copy_button_class() -> type | None:
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
