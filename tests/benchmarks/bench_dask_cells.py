"""What a ``%%executor dask --address ...`` cell costs, against the same cell with a raw client.

    python tests/benchmarks/bench_dask_cells.py [--shape cli|procs|inproc] [--cells 100] [--reps 5]
                                                [--profile]

A real IPython shell (``InteractiveShell``, nbexec loaded with ``%load_ext nbexec``) runs blocks
of ``--cells`` one-task cells on one cluster (default: a CLI ``dask scheduler`` + 2 workers that
cannot import nbexec; see ``bench_dask.py``), interleaved block by block, median of ``--reps``:

- raw:      ``y = client.gather(client.submit(inc, 1, pure=False))`` (a ``distributed.Client``
            the notebook made, connected to the same scheduler);
- nbexec:   ``%%executor dask --address ADDR`` + ``y = nbexec.submit(inc, 1)`` (the session
            executor is reused from cell to cell; the cell gets its run and its live table);
- no table: the same with ``--no-table``, to show what the view costs.

Outside a kernel the view is the text/HTML fallback (no widget comm). ``--profile`` prints the
cProfile of one block of nbexec cells instead (what a cell adds: session lookup, the run, the
view, the event channel).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
os.environ.pop("NBEXEC_EXECUTOR", None)

from _common import cpu_ratio, interleave, machine, median, paired_ratio, timed  # noqa: E402
from bench_dask import start_shape  # noqa: E402

SETUP = """
import distributed, nbexec
def inc(x):
    return x + 1
client = distributed.Client({address!r}, set_as_default=False)
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--shape", default="cli")
    p.add_argument("--cells", type=int, default=100)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--profile", choices=("table", "no-table"), default=None)
    a = p.parse_args(argv)
    from IPython.core.interactiveshell import InteractiveShell

    import nbexec

    t0 = time.perf_counter()
    print(f"# bench_dask_cells: {machine()}", flush=True)
    with contextlib.ExitStack() as stack:
        address = start_shape(a.shape, stack)
        stack.callback(nbexec.stop)
        shell = InteractiveShell.instance()
        out = io.StringIO()

        def run_cell(src):
            with contextlib.redirect_stdout(out):
                result = shell.run_cell(src, store_history=False)
            result.raise_error()
            out.seek(0), out.truncate()  # the text views printed

        run_cell("%load_ext nbexec")
        run_cell(SETUP.format(address=address))
        stack.callback(lambda: shell.user_ns["client"].close())
        nb_cell = f"%%executor dask --address {address}\ny = nbexec.submit(inc, 1)"
        quiet_cell = f"%%executor dask --address {address} --no-table\ny = nbexec.submit(inc, 1)"
        raw_cell = "y = client.gather(client.submit(inc, 1, pure=False))"

        def block(src):
            def go():
                for _ in range(a.cells):
                    run_cell(src)
                assert shell.user_ns["y"] == 2

            return timed(go)

        if a.profile is not None:
            import cProfile
            import pstats

            block(nb_cell)
            prof = cProfile.Profile()
            prof.runcall(block, nb_cell if a.profile == "table" else quiet_cell)
            st = pstats.Stats(prof)
            st.sort_stats("cumulative").print_stats(45)
            st.sort_stats("tottime").print_stats(20)
            return
        cases = [("raw", lambda: block(raw_cell)), ("nbexec", lambda: block(nb_cell)),
                 ("no table", lambda: block(quiet_cell))]  # fmt: skip
        t = interleave(cases, a.reps, label=f"{a.shape} {a.cells} cells")
    n = a.cells
    print(f"\n**{a.shape}: one-task cells, median of {a.reps} interleaved blocks of {n}**\n")
    print("| cell | ms/cell | vs raw | CPU ratio | budget |")
    print("|---|---:|---:|---:|---|")
    print(
        f"| raw `client.gather(client.submit(...))` | {median(t['raw']) / n * 1e3:.2f} | 1.00x | 1.00x | |"
    )
    for name, label in (("nbexec", "`%%executor dask --address ...`"),
                        ("no table", "`%%executor dask --address ... --no-table`")):  # fmt: skip
        r = paired_ratio(t["raw"], t[name])
        print(f"| {label} | {median(t[name]) / n * 1e3:.2f} | {r:.2f}x "
              f"| {cpu_ratio(t['raw'], t[name]):.2f}x | {'pass' if r <= 1.1 else '**over 1.1x**'} |")  # fmt: skip
    print(f"\n_{machine()}; {time.perf_counter() - t0:.0f} s._")


if __name__ == "__main__":
    main()
