"""N trivial tasks through ``nbexec.run(mode)`` with tracking on, vs the raw backend, same run.

    python tests/benchmarks/bench_runs.py [--modes local,threads,sync,processes,dask] [--reps 5]
                                          [--full]

Per mode, interleaved (A B C D A B C D ...) after a warm-up round, median of ``--reps``:

- raw:    the backend alone: a plain loop (local), ``dask.threaded.get`` / ``dask.get`` on a raw
          graph (threads / sync), ``dask.multiprocessing.get`` with its default chunking on a
          started pool (processes), a ``client.submit`` loop / ``client.map`` on the run's own
          LocalCluster (dask: 2 worker processes x 1 thread on 127.0.0.1, ``pure=False``);
- exec:   the session executor alone: ``executor.submit_future`` N times + ``executor.wait``
          (``DaskExecutor.map`` for the dask map row) -- the same mode without runs and tracking;
- submit: ``with nbexec.run(mode): [nbexec.submit(inc, i) for i in range(n)]``;
- map:    ``with nbexec.run(mode): nbexec.map(inc, range(n))``.

Budgets (DESIGN.md): threads/sync/processes within 1.5x of raw; dask submit within 1.1x of the
``client.submit`` loop and map within 1.1x of ``client.map``; local under +10 µs/task over a
plain call; tracking (run vs executor alone) at most +10%; a finished task's record under 500
bytes; per-task cost flat from 1,000 to 100,000 tasks (threads; checked here as <= 1.2x).

Default sizes keep the whole script near 3 minutes on a quiet 2-core machine; ``--full`` uses
the sizes of the issue (processes 10,000; dask 2,000 submit / 10,000 map), which takes longer.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.pop("NBEXEC_EXECUTOR", None)  # measure the mode named here, not an override

from _common import (  # noqa: E402
    delta_row,
    interleave,
    machine,
    median,
    ratio_row,
    table,
    timed,
)

DASK_OPTIONS = {"workers": 2, "threads_per_worker": 1, "processes": True}


def inc(x):
    return x + 1


def graph(n):
    return {("inc", i): (inc, i) for i in range(n)}


def options(mode):
    return DASK_OPTIONS if mode == "dask" else {}


def run_submit(mode, n):
    import nbexec

    def go():
        with nbexec.run(mode, **options(mode)):
            [nbexec.submit(inc, i) for i in range(n)]

    return timed(go)


def run_map(mode, n):
    import nbexec

    def go():
        with nbexec.run(mode, **options(mode)):
            nbexec.map(inc, range(n))

    return timed(go)


def exec_submit(ex, n):
    return timed(lambda: ex.wait([ex.submit_future(inc, i) for i in range(n)]))


def exec_map(ex, n):
    return timed(lambda: ex.wait(ex.map(inc, range(n))))


def mp_pool(workers):
    """A started process pool exactly like the one ``dask.multiprocessing.get`` makes for itself."""
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    from dask.multiprocessing import get_context, initialize_worker_process

    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context(),
        initializer=partial(initialize_worker_process, user_initializer=None),
    )
    list(pool.map(abs, range(4 * workers)))
    return pool


# --- memory ---------------------------------------------------------------------------------


def record_bytes(run) -> float:
    """Bytes the run's tracker keeps per finished task: its row in the columns (names, states and
    places shared), the keys executors gave and the error texts (``Tracker.nbytes``)."""
    return run.tracker.nbytes() / len(run.tracker)


def memory(mode, n):
    """(record bytes/task, whole run retained bytes/task by tracemalloc) after a finished run."""
    import nbexec

    with nbexec.run(mode, **options(mode)):
        pass  # start the session executor outside the tracing
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with nbexec.run(mode, **options(mode)) as run:
            nbexec.map(inc, range(n))
        gc.collect()
        retained = (tracemalloc.get_traced_memory()[0] - base) / n
        snap = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert run.summary() == {"inc": {"success": n}}, run.summary()
    top = snap.filter_traces([tracemalloc.Filter(True, "*nbexec*")]).statistics("lineno")[:6]
    where = "; ".join(
        f"{os.path.relpath(s.traceback[0].filename, os.path.dirname(nbexec.__file__))}:"
        f"{s.traceback[0].lineno} {s.size / n:.0f} B/task"
        for s in top
    )
    return record_bytes(run), retained, where


# --- per mode ---------------------------------------------------------------------------------


def bench_mode(mode, sizes, reps, map_sizes=None):
    """Rows vs raw, tracking rows, and the timings per size (for the flatness check)."""
    import dask
    import dask.threaded

    import nbexec

    rows, tracking, per_size = [], [], {}
    with nbexec.run(mode, **options(mode)):
        pass
    ex = nbexec.current()
    pool = mp_pool(ex.num_workers) if mode == "processes" else None
    try:
        for n in sizes:
            cases = []
            if mode == "local":
                cases.append(("raw", lambda n=n: timed(lambda: [inc(i) for i in range(n)])))
            elif mode == "dask":
                client = ex.client
                cases.append(("raw", lambda n=n, c=client: timed(
                    lambda: c.gather([c.submit(inc, i, pure=False) for i in range(n)]))))  # fmt: skip
            else:
                get = {"threads": dask.threaded.get, "sync": dask.get}.get(mode)

                def raw(n=n, get=get):
                    def go():
                        dsk = graph(n)
                        if pool is not None:
                            import dask.multiprocessing

                            dask.multiprocessing.get(dsk, list(dsk), pool=pool)
                        else:
                            get(dsk, list(dsk))

                    return timed(go)

                cases.append(("raw", raw))
            big = n >= 100_000
            if not big:
                cases.append(("exec", lambda n=n: exec_submit(ex, n)))
            cases.append(("submit", lambda n=n: run_submit(mode, n)))
            if not big and mode != "dask":
                cases.append(("map", lambda n=n: run_map(mode, n)))
            t = interleave(cases, reps, warmup=0 if big else 1, label=f"{mode} n={n}")
            per_size[n] = t
            raw_label = {
                "local": "plain loop",
                "threads": "dask.threaded.get",
                "sync": "dask.get",
                "processes": "dask.multiprocessing.get (chunksize 6)",
                "dask": "client.submit loop",
            }[mode]
            for case in ("submit", "map"):
                if case not in t:
                    continue
                label = f"nbexec.{case}"
                if mode == "local":
                    rows.append(delta_row(mode, n, raw_label, t["raw"], label, t[case], 10))
                else:
                    limit = 1.1 if mode == "dask" else 1.5
                    rows.append(ratio_row(mode, n, raw_label, t["raw"], label, t[case], limit))
            if "exec" in t:
                for case in ("submit", "map"):
                    if case in t:
                        tracking.append(ratio_row(mode, n, "executor.submit_future + wait",
                                                  t["exec"], f"nbexec.{case} (tracked)", t[case], 1.1))  # fmt: skip
        for n in map_sizes or ():
            client = ex.client
            cases = [
                ("raw", lambda n=n, c=client: timed(lambda: c.gather(c.map(inc, range(n), pure=False)))),
                ("exec", lambda n=n: exec_map(ex, n)),
                ("map", lambda n=n: run_map(mode, n)),
            ]  # fmt: skip
            t = interleave(cases, reps, label=f"{mode} map n={n}")
            rows.append(ratio_row(mode, n, "client.map", t["raw"], "nbexec.map", t["map"], 1.1))
            tracking.append(ratio_row(mode, n, "DaskExecutor.map + wait", t["exec"],
                                      "nbexec.map (tracked)", t["map"], 1.1))  # fmt: skip
    finally:
        if pool is not None:
            pool.shutdown()
    return rows, tracking, per_size


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--modes", default="local,threads,sync,processes,dask")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--full", action="store_true", help="the issue's sizes (slower)")
    p.add_argument("--memory-n", type=int, default=10_000)
    a = p.parse_args(argv)
    modes = a.modes.split(",")
    sizes = {
        "local": [1_000, 10_000, 100_000],
        "threads": [1_000, 10_000, 100_000],
        "sync": [10_000],
        "processes": [10_000] if a.full else [5_000],
        "dask": [2_000] if a.full else [300],
    }
    dask_map = [10_000] if a.full else [1_000]
    import nbexec

    t0 = time.perf_counter()
    print(f"# bench_runs: {machine()}", flush=True)
    rows, tracking, flat, mem = [], [], [], []
    try:
        for mode in modes:
            r, tr, per_size = bench_mode(
                mode, sizes[mode], a.reps, dask_map if mode == "dask" else None
            )
            rows += r
            tracking += tr
            if 1_000 in per_size and 100_000 in per_size:
                for case in ("raw", "submit"):
                    small = median(per_size[1_000][case]) / 1_000 * 1e6
                    large = median(per_size[100_000][case]) / 100_000 * 1e6
                    flat.append((mode, case, small, large))
            n_mem = min(a.memory_n, 1_000) if mode == "dask" else a.memory_n
            mem.append((mode, n_mem, *memory(mode, n_mem)))
    finally:
        nbexec.stop()

    print()
    print(
        table(
            rows,
            f"nbexec.run(mode) with tracking vs the raw backend, median of {a.reps} interleaved runs",
        )
    )
    print()
    print(table(tracking, "Tracking overhead: the same executor alone vs through nbexec.core.run"))
    if flat:
        print("\n**Per-task cost, 1,000 -> 100,000 tasks (budget: flat, <= 1.2x)**\n")
        print("| mode | what | µs/task at 1,000 | µs/task at 100,000 | 100k / 1k | pass/fail |")
        print("|---|---|---:|---:|---:|---|")
        for mode, case, small, large in flat:
            judged = case != "raw"
            verdict = ("pass" if large / small <= 1.2 else "**FAIL**") if judged else "(baseline)"
            what = "nbexec.submit" if case == "submit" else "raw"
            print(
                f"| {mode} | {what} | {small:.1f} | {large:.1f} | {large / small:.2f}x | {verdict} |"
            )
    print("\n**Memory per finished task (budget: the run's record < 500 bytes)**\n")
    print(
        "| mode | N | tracker row (B/task) | pass/fail | whole Run retained, tracemalloc (B/task) | top nbexec allocation sites |"
    )
    print("|---|---:|---:|---|---:|---|")
    for mode, n, rec, retained, where in mem:
        print(
            f"| {mode} | {n:,} | {rec:.0f} | {'pass' if rec < 500 else '**FAIL**'} | {retained:,.0f} | {where} |"
        )
    print(f"\n_{machine()}; {time.perf_counter() - t0:.0f} s._")


if __name__ == "__main__":
    main()
