"""What the ``%%executor`` cell rewrite costs (a real IPython shell, interleaved, medians).

1. A tight pure-Python loop of 10^6 additions at the cell's top level: under ``%%executor local``
   vs the same cell without the magic (the issue's budget: at most 2x).
2. The same loop calling a builtin (``abs(i)``), a function defined in an earlier cell (``f(i)``)
   or ``len`` of a 1,000-item list each step (every call goes through the rewrite).
3. A cell of 2,000 task calls under ``%%executor local``/``threads`` vs the same calls in a
   ``with nbexec.run(...)`` block run as a plain cell (no rewrite): the per-task cost.
4. Parallelism: four independent tasks sleeping 0.2 s then ``sum(...)`` in one cell on
   ``threads -n 4``: the cell's time over one task's (about 1 when they run at once, 4 serially).

Run: ``python tests/benchmarks/bench_cells.py [--reps N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import interleave, median, paired_ratio  # noqa: E402

LOOP = "total = 0\nfor i in range(10**6):\n    total += i\n"
CALLS = "total = 0\nfor i in range(10**6):\n    total += abs(i)\n"
USER_CALLS = "total = 0\nfor i in range(10**6):\n    total += f(i)\n"
LEN_CALLS = "total = 0\nxs = list(range(1000))\nfor i in range(10**5):\n    total += len(xs)\n"
N_TASKS = 2000
TASKS = f"futs = [inc(i) for i in range({N_TASKS})]\n"
NAP = 0.2
NAPS = "total = sum([nap(i) for i in range(4)])\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    reps = parser.parse_args().reps
    from IPython.core.interactiveshell import InteractiveShell

    from nbexec import session

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "nbexec")
    sh.run_cell("import nbexec\n@nbexec.task\ndef inc(x):\n    return x + 1\n")
    sh.run_cell(f"import time\n@nbexec.task\ndef nap(x):\n    time.sleep({NAP})\n    return x\n")

    def cell(code: str):
        def run() -> float:
            t0 = time.perf_counter()
            result = sh.run_cell(code, silent=True)
            elapsed = time.perf_counter() - t0
            assert result.success, result
            return elapsed

        return run

    lines = []
    sh.run_cell("def f(x):\n    return x\n")
    loops = (
        ("10^6 additions", LOOP),
        ("10^6 additions + abs() calls", CALLS),
        ("10^6 additions + calls of a plain function", USER_CALLS),
        ("10^5 additions + len() of a 1,000-item list", LEN_CALLS),
    )
    for label, body in loops:
        out = interleave(
            [("plain", cell(body)), ("magic", cell("%%executor local --no-table\n" + body))],
            reps,
            label=label,
        )
        lines.append(
            f"| {label} | {median(out['plain']) * 1e3:.0f} ms | {median(out['magic']) * 1e3:.0f} ms "
            f"| {paired_ratio(out['plain'], out['magic']):.2f}x |"
        )
    for mode in ("local", "threads -n 2"):
        sh.run_cell(f"%executor {mode}")
        plain = "with nbexec.run(nbexec.current()):\n" + "".join(
            "    " + line + "\n" for line in TASKS.splitlines()
        )
        out = interleave(
            [("plain", cell(plain)), ("magic", cell(f"%%executor {mode} --no-table\n" + TASKS))],
            reps,
            label=mode,
        )
        per = {k: median(v) / N_TASKS * 1e6 for k, v in out.items()}
        lines.append(
            f"| {N_TASKS} task calls, {mode} | {per['plain']:.1f} µs/task | "
            f"{per['magic']:.1f} µs/task | {paired_ratio(out['plain'], out['magic']):.2f}x |"
        )
    sh.run_cell("%executor threads -n 4")
    out = interleave([("magic", cell("%%executor threads -n 4 --no-table\n" + NAPS))], reps)
    lines.append(
        f"| 4 tasks of {NAP} s then `sum`, threads -n 4 | {4 * NAP * 1e3:.0f} ms serially | "
        f"{median(out['magic']) * 1e3:.0f} ms | {median(out['magic']) / NAP:.2f}x one task |"
    )
    session.stop()
    print("| cell | without the magic (or `with nbexec.core.run`) | under `%%executor` | ratio |")
    print("|---|---:|---:|---:|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
