"""Shared helpers for the benchmark scripts: interleaved timing, medians, the markdown table.

Not a benchmark itself (pytest never collects tests/benchmarks: see ``norecursedirs``).
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def inc(x):
    """The trivial task every benchmark runs (scripts re-define it in ``__main__`` so that it
    travels by value to process pools and Dask workers)."""
    return x + 1


class Timing(float):
    """Wall-clock seconds, with CPU seconds as ``.cpu`` (this process, all its threads) and
    ``.cpu_all`` (this process and every descendant: pool children, Dask workers; the
    descendants' share has the kernel's 10 ms tick resolution)."""

    cpu: float = 0.0
    cpu_all: float = 0.0


def _tree_cpu() -> dict[int, float]:
    import psutil

    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def timed(fn: Callable[[], object]) -> Timing:
    """Seconds taken by ``fn()`` (garbage of earlier runs collected first, outside the timing)."""
    gc.collect()
    tree0 = _tree_cpu()
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    t = Timing(time.perf_counter() - t0)
    t.cpu = time.process_time() - c0
    tree1 = _tree_cpu()
    t.cpu_all = t.cpu + sum(v - tree0.get(pid, 0.0) for pid, v in tree1.items())
    return t


def interleave(
    cases: list[tuple[str, Callable[[], float]]], reps: int, warmup: int = 1, label: str = ""
) -> dict[str, list[float]]:
    """Run every case once per repetition, in the order given (A B C A B C ...).

    Each case returns the seconds it took (so it can keep its own setup out of the timing).
    ``warmup`` rounds run first and are discarded.
    """
    for _ in range(warmup):
        for _name, fn in cases:
            fn()
    out: dict[str, list[float]] = {name: [] for name, _ in cases}
    for r in range(reps):
        for name, fn in cases:
            out[name].append(fn())
        if label:
            row = "  ".join(f"{name}={out[name][-1]:.3f}s" for name, _ in cases)
            print(f"    [{label}] rep {r + 1}/{reps}: {row}", file=sys.stderr, flush=True)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over repetitions of b[i] / a[i] (adjacent runs, so slow drifts of load cancel)."""
    return statistics.median(y / x for x, y in zip(a, b, strict=True))


def cpu_ratio(a: list[Timing], b: list[Timing]) -> float:
    """Median ratio of CPU seconds used by this process and its descendants (robust to other load)."""
    ratios = [y.cpu_all / x.cpu_all for x, y in zip(a, b, strict=True) if x.cpu_all > 1e-3]
    return statistics.median(ratios) if ratios else float("nan")


@dataclass
class Row:
    mode: str
    n: int
    raw_label: str
    raw_us: float
    nb_label: str
    nb_us: float
    ratio: float
    cpu_ratio: float
    budget: str  # "<= 1.5x", "<= +10 us", ...
    ok: bool
    note: str = ""
    spread: dict = field(default_factory=dict)


def ratio_row(mode, n, raw_label, raw, nb_label, nb, limit, note="") -> Row:
    """A row judged on the paired median ratio nb/raw <= limit."""
    r, rc = paired_ratio(raw, nb), cpu_ratio(raw, nb)
    ok, ok_cpu = r <= limit, rc <= limit
    if ok != ok_cpu:
        note = (note + " " if note else "") + (
            "(CPU ratio passes)" if ok_cpu else "(CPU ratio fails)"
        )
    return Row(mode, n, raw_label, median(raw) / n * 1e6, nb_label, median(nb) / n * 1e6, r, rc,
               f"<= {limit:g}x", ok, note)  # fmt: skip


def delta_row(mode, n, raw_label, raw, nb_label, nb, limit_us, note="") -> Row:
    """A row judged on the paired median difference (nb - raw) per task <= limit_us.

    Everything runs in the calling thread here, so the CPU time of this process is also
    shown: on a machine loaded by other work, wall time counts time spent waiting for a core.
    The verdict is on CPU time when the wall-clock verdict differs, and says so.
    """
    d = statistics.median((y - x) / n * 1e6 for x, y in zip(raw, nb, strict=True))
    dc = statistics.median((y.cpu - x.cpu) / n * 1e6 for x, y in zip(raw, nb, strict=True))
    r, rc = paired_ratio(raw, nb), cpu_ratio(raw, nb)
    ok_wall, ok_cpu = d <= limit_us, dc <= limit_us
    budget = f"<= +{limit_us:g} µs/task (wall +{d:.1f}, CPU +{dc:.1f})"
    if ok_wall != ok_cpu:
        note = (note + " " if note else "") + (
            "(on CPU time; wall FAIL)" if ok_cpu else "(CPU FAIL)"
        )
    return Row(mode, n, raw_label, median(raw) / n * 1e6, nb_label, median(nb) / n * 1e6, r, rc,
               budget, ok_cpu, note)  # fmt: skip


def table(rows: list[Row], title: str = "") -> str:
    """The markdown table the README quotes."""
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines += [
        "| mode | N | raw (baseline) | raw µs/task | nbexec | nbexec µs/task | ratio | CPU ratio | budget | pass/fail |",
        "|---|---:|---|---:|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        verdict = "pass" if r.ok else "**FAIL**"
        lines.append(
            f"| {r.mode} | {r.n:,} | {r.raw_label} | {_us(r.raw_us)} | {r.nb_label} | {_us(r.nb_us)} "
            f"| {r.ratio:.2f}x | {_x(r.cpu_ratio)} | {r.budget} | {verdict}{(' ' + r.note) if r.note else ''} |"
        )
    return "\n".join(lines)


def _x(x: float) -> str:
    return "n/a" if x != x else f"{x:.2f}x"


def _us(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def machine() -> str:
    """One line describing where and under what load this ran."""
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    import subprocess

    import dask
    import distributed

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--", "../../nbexec"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        rev = f"nbexec at {rev}{' + uncommitted changes' if dirty else ''}, "
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return (
        f"{rev}{platform.python_implementation()} {platform.python_version()}, dask {dask.__version__}, "
        f"distributed {distributed.__version__}, {os.cpu_count()} CPUs, load average {load}"
    )
