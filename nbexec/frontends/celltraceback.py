"""Cells named as IPython names them (``Cell In[n]``) in the task table's traceback texts.

The core formats a failed task's traceback without IPython; this module lends it IPython's names
for the code files of cells (``<ipython-input-…>`` in a terminal, ipykernel's temporary files in
a notebook). Importing it registers the labeller; the magic's modules import it.
"""

from __future__ import annotations

from ..core._errtext import label_code_files

__all__ = ["cell_label"]


def cell_label(filename: str) -> str | None:
    """``"Cell In[n]"`` for the code file of IPython cell ``n``, else None."""
    from IPython import get_ipython

    shell = get_ipython()
    name_of = getattr(getattr(shell, "compile", None), "format_code_name", None)
    data = name_of(filename) if name_of is not None else None
    return f"{data[0]} {data[1]}" if data else None


label_code_files(cell_label)
