"""What the background-cell kernel tests share: the ``%%executor`` line of each concurrent mode
(Dask with worker processes, so the kernel's file descriptors are not the workers') and ``ok``."""

from __future__ import annotations

from kernel_helpers import Cell

#: ``%%executor`` lines of the modes where a background cell's tasks run beside the kernel.
LINES = {
    "threads": "threads -n 2",
    "processes": "processes -n 2",
    "dask": "dask -n 2 --processes --threads-per-worker 1",
}


def ok(cell: Cell) -> Cell:
    """``cell``, after checking that it ran without error."""
    assert cell.ok, cell.error_text or cell.reply
    return cell
