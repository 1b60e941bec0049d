"""N trivial tasks through each nbexec executor vs the raw backend, in the same run.

    python tests/benchmarks/bench_executors.py [--n 10000] [--n-processes 5000] [--n-dask 500]
                                               [--reps 5] [--only local,threads,sync,processes,dask]

Executor level only (no run, no tracking): ``submit`` N times, then one ``wait``.

- local:     a plain loop ``[inc(i) for i in range(n)]`` vs ``LocalExecutor`` (budget: < +10 µs/task)
- threads:   ``dask.threaded.get`` on a raw graph ``{("inc", i): (inc, i)}`` (dask's default pool,
             one thread per core) vs ``LocalDaskExecutor("threads")`` (budget 1.5x)
- sync:      ``dask.get`` on the same graph vs ``LocalDaskExecutor("sync")`` (budget 1.5x)
- processes: ``dask.multiprocessing.get`` with its default chunking (chunksize 6) on an already
             started process pool vs ``LocalDaskExecutor("processes")`` (budget 1.5x); plus the
             "few long tasks still run in parallel" check (2 x ``time.sleep(0.5)`` on 2 workers)
- dask:      a raw ``client.submit`` loop and ``client.map`` vs ``DaskExecutor.submit`` loop and
             ``DaskExecutor.map`` on the same LocalCluster (2 worker processes x 1 thread,
             127.0.0.1), all with ``pure=False`` (budget 1.1x)

Runs are interleaved (A B A B ...), after a warm-up round; the table shows medians and the median
of the per-repetition ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import delta_row, interleave, machine, median, ratio_row, table, timed  # noqa: E402


def inc(x):
    return x + 1


def graph(n):
    return {("inc", i): (inc, i) for i in range(n)}


def bench_local(n, reps):
    from nbexec.executors import LocalExecutor

    ex = LocalExecutor()

    def raw():
        return timed(lambda: [inc(i) for i in range(n)])

    def nb():
        def go():
            with ex.start():
                ex.wait([ex.submit(inc, i) for i in range(n)])

        return timed(go)

    t = interleave([("raw", raw), ("nb", nb)], reps, label="local")
    return [delta_row("local", n, "plain loop", t["raw"], "LocalExecutor", t["nb"], 10)]


def bench_local_dask(scheduler, n, reps):
    import dask
    import dask.threaded

    from nbexec.executors import LocalDaskExecutor

    get = dask.threaded.get if scheduler == "threads" else dask.get
    ex = LocalDaskExecutor(scheduler)

    def raw():
        def go():
            dsk = graph(n)
            get(dsk, list(dsk))

        return timed(go)

    with ex.start():

        def nb():
            return timed(lambda: ex.wait([ex.submit(inc, i) for i in range(n)]))

        t = interleave([("raw", raw), ("nb", nb)], reps, label=scheduler)
    label = "dask.threaded.get (raw graph)" if scheduler == "threads" else "dask.get (raw graph)"
    return [
        ratio_row(scheduler, n, label, t["raw"], f'LocalDaskExecutor("{scheduler}")', t["nb"], 1.5)
    ]


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
    list(pool.map(abs, range(4 * workers)))  # start every worker
    return pool


def bench_processes(n, reps, workers=2):
    import dask.multiprocessing

    from nbexec.executors import LocalDaskExecutor

    rows = []
    pool = mp_pool(workers)
    ex = LocalDaskExecutor("processes", num_workers=workers)
    try:
        with ex.start():

            def raw():
                def go():
                    dsk = graph(n)
                    dask.multiprocessing.get(dsk, list(dsk), pool=pool)

                return timed(go)

            def nb():
                return timed(lambda: ex.wait([ex.submit(inc, i) for i in range(n)]))

            t = interleave([("raw", raw), ("nb", nb)], reps, label="processes")
            rows.append(
                ratio_row(
                    "processes",
                    n,
                    "dask.multiprocessing.get (chunksize 6, warm pool)",
                    t["raw"],
                    'LocalDaskExecutor("processes")',
                    t["nb"],
                    1.5,
                )  # fmt: skip
            )

            # A few long tasks must still run in parallel on every worker.
            def nb_long():
                return timed(lambda: ex.wait([ex.submit(time.sleep, 0.5) for _ in range(workers)]))

            def raw_long():
                def go():
                    dsk = {("sleep", i): (time.sleep, 0.5) for i in range(workers)}
                    dask.multiprocessing.get(dsk, list(dsk), pool=pool)

                return timed(go)

            t = interleave([("raw", raw_long), ("nb", nb_long)], reps, warmup=0, label="long")
            raw_s, nb_s = median(t["raw"]), median(t["nb"])
            long_check = (
                f"{workers} x time.sleep(0.5) on {workers} workers: nbexec processes "
                f"{nb_s:.2f} s (budget ~0.5 s, {'pass' if nb_s < 0.75 else 'FAIL'}); "
                f"dask.multiprocessing.get chunksize 6: {raw_s:.2f} s"
            )
    finally:
        pool.shutdown()
    return rows, long_check


def bench_dask(n, reps):
    from nbexec.executors import DaskExecutor

    ex = DaskExecutor(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True}
    )  # nbexec's LocalCluster defaults: host 127.0.0.1, dashboard on 127.0.0.1:0
    with ex.start():
        client = ex.client
        client.wait_for_workers(2)
        assert len(client.scheduler_info()["workers"]) == 2
        print(f"  cluster: {ex.describe()}", file=sys.stderr)

        def raw_submit():
            return timed(
                lambda: client.gather([client.submit(inc, i, pure=False) for i in range(n)])
            )

        def nb_submit():
            return timed(lambda: ex.wait([ex.submit(inc, i) for i in range(n)]))

        def raw_map():
            return timed(lambda: client.gather(client.map(inc, range(n), pure=False)))

        def nb_map():
            return timed(lambda: ex.wait(ex.map(inc, range(n))))

        t = interleave(
            [("raw_submit", raw_submit), ("nb_submit", nb_submit), ("raw_map", raw_map),
             ("nb_map", nb_map)], reps, label="dask")  # fmt: skip
    return [
        ratio_row("dask", n, "client.submit loop", t["raw_submit"], "DaskExecutor.submit loop",
                  t["nb_submit"], 1.1),
        ratio_row("dask", n, "client.map", t["raw_map"], "DaskExecutor.map", t["nb_map"], 1.1),
    ]  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n", type=int, default=10_000, help="tasks for local, threads, sync")
    p.add_argument("--n-processes", type=int, default=5_000)
    p.add_argument("--n-dask", type=int, default=500)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--only", default="local,threads,sync,processes,dask")
    a = p.parse_args(argv)
    only = set(a.only.split(","))
    t0 = time.perf_counter()
    print(f"# bench_executors: {machine()}", flush=True)
    rows, notes = [], []
    if "local" in only:
        rows += bench_local(a.n, a.reps)
    if "threads" in only:
        rows += bench_local_dask("threads", a.n, a.reps)
    if "sync" in only:
        rows += bench_local_dask("sync", a.n, a.reps)
    if "processes" in only:
        r, note = bench_processes(a.n_processes, a.reps)
        rows += r
        notes.append(note)
    if "dask" in only:
        rows += bench_dask(a.n_dask, a.reps)
    print()
    print(table(rows, f"Executors alone, median of {a.reps} interleaved runs"))
    for note in notes:
        print(f"\n- {note}")
    print(f"\n_{machine()}; {time.perf_counter() - t0:.0f} s._")


if __name__ == "__main__":
    main()
