"""The task stream as a small PNG: what a saved notebook keeps of a ``--dashboard`` cell.

One bar per task from its start to its end, a lane per thread, process or worker (tasks that
overlap on a lane, as on the threads of a Dask worker, each get a row of it), coloured by
task name as the live chart is, and a time axis in seconds. Drawn in pure Python (zlib) so it needs
no plotting library or browser. A PNG because the image is a picture of one run's times: nbval does
not compare ``image/png`` outputs, so a notebook still compares equal run after run and in every
mode, while readers without a kernel (GitHub, nbviewer, VS Code, nbconvert) see the chart.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Sequence

__all__ = ["stream_png"]

# A 3x5 pixel font for the axis labels (digits, the decimal point and "s"), one row per string.
_GLYPHS = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
    ".": ("000", "000", "000", "000", "010"),
    "s": ("000", "011", "110", "011", "110"),
}
_INK = (80, 80, 80)
_LANE = (242, 242, 242)
_AXIS = (190, 190, 190)


def _rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [bytearray(b"\xff" * (3 * width)) for _ in range(height)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, rgb: tuple[int, int, int]) -> None:
        x0, x1 = max(0, x0), min(self.width, x1)
        pixel = bytes(rgb)
        for y in range(max(0, y0), min(self.height, y1)):
            if x1 > x0:
                self.rows[y][3 * x0 : 3 * x1] = pixel * (x1 - x0)

    def text(self, x: int, y: int, text: str, rgb: tuple[int, int, int], scale: int = 2) -> None:
        for ch in text:
            for r, line in enumerate(_GLYPHS.get(ch, ())):
                for c, bit in enumerate(line):
                    if bit == "1":
                        px, py = x + c * scale, y + r * scale
                        self.rect(px, py, px + scale, py + scale, rgb)
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.rows)

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def _step(span: float) -> float:
    """A round tick step giving 4-8 ticks over ``span`` seconds."""
    raw = span / 6
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _label(t: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{t:.{digits}f}s"


def _pack(
    start: Sequence[float], end: Sequence[float], lane_of: Sequence[str], lanes: Sequence[str]
) -> tuple[list[int], list[int]]:
    """Rows for the bars: tasks that overlap on one lane (threads of one Dask worker) get rows of
    their own, taken greedily in start order. Returns each bar's row and the first row of each
    lane (plus the total at the end)."""
    order = sorted(range(len(start)), key=lambda i: start[i])
    free: dict[str, list[float]] = {lane: [] for lane in lanes}  # each sub-row's end so far
    sub = [0] * len(start)
    for i in order:
        ends = free.setdefault(lane_of[i], [])
        for k, busy_until in enumerate(ends):
            if busy_until <= start[i]:
                ends[k] = end[i]
                sub[i] = k
                break
        else:
            ends.append(end[i])
            sub[i] = len(ends) - 1
    first, row = {}, 0
    for lane in free:
        first[lane] = row
        row += max(1, len(free[lane]))
    return [first[lane_of[i]] + sub[i] for i in range(len(start))], [*first.values(), row]


def stream_png(
    data: dict[str, list],
    lanes: Sequence[str],
    color: Callable[[str], str],
    *,
    width: int = 800,
    lane_height: int = 14,
    max_bars: int = 2000,
) -> bytes:
    """The PNG of ``data`` (``stream_data``'s columns) with ``lanes`` and ``color(name)``."""
    start, end = data["start"][-max_bars:], data["end"][-max_bars:]
    names, lane_of = data["name"][-max_bars:], data["lane"][-max_bars:]
    span = max(end, default=0.0) or 1.0
    rows, bounds = _pack(start, end, lane_of, lanes)
    left, right, top, axis = 6, 10, 4, 22
    height = top + lane_height * max(1, bounds[-1]) + axis
    canvas = _Canvas(width, height)
    plot_w = width - left - right
    scale = plot_w / span
    for i in range(len(bounds) - 1):
        if i % 2 == 0:  # lanes shaded in turn
            y0, y1 = top + bounds[i] * lane_height, top + bounds[i + 1] * lane_height
            canvas.rect(left, y0, left + plot_w, y1, _LANE)
    for s, e, name, row in zip(start, end, names, rows):
        y = top + row * lane_height
        x0 = left + int(s * scale)
        x1 = max(x0 + 1, left + int(e * scale))
        if x1 - x0 > 2:
            x1 -= 1  # a gap between tasks that follow each other on a lane
        canvas.rect(x0, y + 2, x1, y + lane_height - 2, _rgb(color(name)))
    base = top + lane_height * max(1, bounds[-1])
    canvas.rect(left, base, left + plot_w, base + 1, _AXIS)
    step = _step(span)
    t = 0.0
    while t <= span + 1e-9:
        x = left + int(t * scale)
        canvas.rect(x, base, x + 1, base + 4, _INK)
        label = _label(t, step)
        canvas.text(min(x, width - 8 * len(label)), base + 7, label, _INK)
        t += step
    return canvas.png()
