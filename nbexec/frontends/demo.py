"""``python -m nbexec demo``: one small workload through every mode, with results and timings.

The workload has two dependent tasks (``load`` -> ``total``) and a map (``square`` over 8 numbers).
Every mode must give the same values; the demo prints them with each mode's wall time and stops
every executor it started.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import nbexec

__all__ = ["MODES", "workload", "run_mode", "main"]

#: The modes in the order the demo runs them, with the options it gives each.
MODES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("local", {}),
    ("sync", {}),
    ("threads", {"workers": 2}),
    ("processes", {"workers": 2}),
    ("dask", {"workers": 2, "threads_per_worker": 1}),
)


@nbexec.task
def load(n: int) -> list[int]:
    """The numbers 0..n-1."""
    return list(range(n))


@nbexec.task
def total(numbers: list[int]) -> int:
    """Their sum (depends on ``load``)."""
    return sum(numbers)


def square(x: int) -> int:
    """x squared (mapped)."""
    return x * x


def workload() -> dict[str, Any]:
    """Submit the workload inside the current run; returns the futures by name."""
    numbers = load(10)
    return {"total": total(numbers), "squares": nbexec.map(square, range(8))}


def run_mode(
    mode: str, **options: Any
) -> tuple[dict[str, Any], dict[str, dict[str, int]], float, float]:
    """Run the workload under ``mode``: ``(values, summary, start_seconds, run_seconds)``.

    The executor is made with ``executor_for`` and passed as an object, so ``NBEXEC_EXECUTOR``
    does not replace the mode; it is stopped before this returns.
    """
    executor = nbexec.executor_for(mode, **options)
    t0 = time.perf_counter()
    with executor.start():
        t1 = time.perf_counter()
        with nbexec.run(executor) as run:
            futures = workload()
        values = {
            "total": futures["total"].result(),
            "squares": [f.result() for f in futures["squares"]],
        }
        t2 = time.perf_counter()
    return values, run.summary(), t1 - t0, t2 - t1


def main(out: TextIO | None = None) -> int:
    """Run every mode, print a line per mode, return 0 when all modes agree (1 otherwise)."""
    out = out or sys.stdout
    results: list[dict[str, Any]] = []
    width = max(len(mode) for mode, _ in MODES)
    print(f"nbexec demo: load(10) -> total, map(square, range(8)); {len(MODES)} modes", file=out)
    for mode, options in MODES:
        values, summary, start, elapsed = run_mode(mode, **options)
        results.append(values)
        tasks = sum(sum(states.values()) for states in summary.values())
        print(
            f"  {mode:<{width}}  total={values['total']}  squares={values['squares']}  "
            f"{tasks} tasks  start {start * 1000:7.1f} ms  run {elapsed * 1000:6.1f} ms",
            file=out,
            flush=True,
        )
    same = all(r == results[0] for r in results)
    print("identical results in every mode" if same else "RESULTS DIFFER between modes", file=out)
    print("(start: starting the executor; dask starts a LocalCluster on 127.0.0.1)", file=out)
    return 0 if same else 1
