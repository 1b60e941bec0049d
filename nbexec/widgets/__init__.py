"""Notebook views of runs and of the session: live task table, executor panel, dashboard.

Importing this package imports nothing heavy; ipywidgets, IPython and bokeh load in the submodules
that need them. Every view degrades to text/HTML without ipywidgets or outside a kernel.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["ipywidgets_or_none", "in_kernel", "use_widgets", "display", "with_text"]


def ipywidgets_or_none() -> Any:
    """The ``ipywidgets`` module, or None when it cannot be imported."""
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a front end can render widgets); False in a terminal or script."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a broken IPython must not break a cell
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def use_widgets() -> bool:
    """Whether views should be widgets: ipywidgets importable and running in a kernel."""
    return in_kernel() and ipywidgets_or_none() is not None


def display(obj: Any, **kwargs: Any) -> Any:
    """Show ``obj`` under the current cell (IPython's display), or print its text without IPython.

    ``kwargs`` go to IPython's ``display`` (e.g. ``display_id=True`` returns a DisplayHandle).
    """
    try:
        from IPython.display import display as ipython_display
    except ImportError:
        print(repr(obj))
        return None
    return ipython_display(obj, **kwargs)


def with_text(bundle: Any, text: str) -> Any:
    """A widget's mime bundle with ``text/plain`` replaced by ``text`` and no ``text/html``."""
    metadata = None
    if isinstance(bundle, tuple):
        bundle, metadata = bundle
    data = dict(bundle or {})
    data["text/plain"] = text
    data.pop("text/html", None)
    return (data, metadata) if metadata is not None else data
