"""Dask mode vs the raw client in three cluster shapes, with what reaches the scheduler per task.

    python tests/benchmarks/bench_dask.py [--shapes inproc,procs,cli] [--sizes 300,2000,10000]
                                          [--quick] [--reps 5] [--profile SHAPE]

Shapes (2 workers x 1 thread each, all on 127.0.0.1; nbexec connects with ``address=``):

- inproc: ``LocalCluster(processes=False)``: workers and scheduler share this process (and its
          GIL) with the client, so everything nbexec adds anywhere shows in the time;
- procs:  ``LocalCluster(processes=True)``: worker processes (they can import nbexec);
- cli:    ``dask scheduler`` + 2 x ``dask worker`` from the command line, with a PYTHONPATH on
          which ``nbexec`` and ``_nbexec_remote`` raise ImportError (what nbexec needs there
          travels by value), as in ``tests/fixtures_dask.py``.

Per shape and size, interleaved (A B C D A B C D ...) after a warm-up round (none at 10,000),
median of ``--reps``, all ``pure=False`` on the executor's own client:

- raw submit:  ``client.gather([client.submit(inc, i) for i in range(n)])``;
- nb submit:   ``with nbexec.run("dask", address=...): [nbexec.submit(inc, i) for i in range(n)]``;
- raw map:     ``client.gather(client.map(inc, range(n)))``;
- nb map:      ``with nbexec.run("dask", address=...): nbexec.map(inc, range(n))``.

Scheduler load: every handler of the scheduler (``Scheduler.handlers``: RPC calls;
``Scheduler.stream_handlers``: batched-stream messages from clients and workers) is wrapped in a
counter, and so are the client's stream handlers (what the scheduler sends back); the table shows
the handled operations per task of each case (median over repetitions), and the operations nbexec
adds beyond the raw client's, in total per run. Budget (DESIGN.md): within 1.1x, nothing added per
task (events batched per worker).

``--profile SHAPE`` runs cProfile over one ``nb submit`` of the largest size instead (client side;
for ``inproc`` that includes the workers and the scheduler) and prints the top functions.
``--quick`` drops 10,000. The machine is shared: compare ratios of the same run.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/, for fixtures_dask
os.environ.pop("NBEXEC_EXECUTOR", None)

from _common import cpu_ratio, interleave, machine, median, paired_ratio, timed  # noqa: E402


def inc(x):
    return x + 1


# --- counting what the scheduler handles --------------------------------------------------------


def _install_counters(dask_scheduler=None):
    """On the scheduler: wrap every RPC and stream handler in a counter (idempotent)."""
    import collections as _c
    import functools
    import inspect

    s = dask_scheduler
    if getattr(s, "_bench_counts", None) is not None:
        return True
    counts = s._bench_counts = _c.Counter()

    def wrap(table, prefix):
        for op, handler in list(table.items()):

            def make(op=op, handler=handler):
                name = prefix + op
                if inspect.iscoroutinefunction(handler):

                    @functools.wraps(handler)
                    async def counted(*args, **kwargs):
                        counts[name] += 1
                        return await handler(*args, **kwargs)

                else:

                    @functools.wraps(handler)
                    def counted(*args, **kwargs):
                        counts[name] += 1
                        return handler(*args, **kwargs)

                return counted

            table[op] = make()

    wrap(s.stream_handlers, "")
    wrap(s.handlers, "rpc:")
    return True


def _read_counters(dask_scheduler=None):
    return dict(dask_scheduler._bench_counts), len(dask_scheduler.tasks)


def _install_client_counters(client):
    """Count what the scheduler sends this client (its report stream), by op."""
    counts = collections.Counter()
    handlers = client._stream_handlers
    for op, handler in list(handlers.items()):

        def counted(*args, _op=op, _h=handler, **kwargs):
            counts[_op] += 1
            return _h(*args, **kwargs)

        handlers[op] = counted
    return counts


class Counted:
    """Wraps a timed case: also records the scheduler's and the client's handled ops during it."""

    def __init__(self, client, client_counts, fn):
        self.client, self.client_counts, self.fn = client, client_counts, fn
        self.ops: list[dict] = []

    def __call__(self):
        before, _ = self.client.run_on_scheduler(_read_counters)
        cbefore = dict(self.client_counts)
        t = self.fn()
        # The case's futures are released (and the scheduler forgets their tasks) before counting.
        gc.collect()
        deadline = time.monotonic() + 10
        while True:
            after, left = self.client.run_on_scheduler(_read_counters)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.2)  # the workers' "released" replies to the scheduler
        after, left = self.client.run_on_scheduler(_read_counters)
        cafter = dict(self.client_counts)
        ops = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
        ops.update({f"client:{k}": v - cbefore.get(k, 0) for k, v in cafter.items()
                    if v - cbefore.get(k, 0)})  # fmt: skip
        self.ops.append(ops)
        return t


# --- clusters -----------------------------------------------------------------------------------


def start_shape(shape, stack):
    """Start a cluster of ``shape``; return its address (stopped by ``stack``)."""
    import logging

    if shape in ("inproc", "procs"):
        from distributed import LocalCluster

        kw = dict(n_workers=2, threads_per_worker=1, processes=shape == "procs",
                  dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)  # fmt: skip
        if shape == "procs":
            kw["host"] = "127.0.0.1"
        else:
            kw["worker_dashboard_address"] = "127.0.0.1:0"
        cluster = LocalCluster(**kw)
        stack.callback(cluster.close)
        return cluster.scheduler_address
    from fixtures_dask import DaskCLICluster

    root = Path(tempfile.mkdtemp(prefix="nbexec-bench-dask-"))
    cluster = DaskCLICluster(root)
    stack.callback(cluster.close)
    cluster.start_scheduler()
    cluster.start_worker(nthreads=1, wait=False)
    cluster.start_worker(nthreads=1, wait=False)
    cluster.wait_for_workers(2)
    return cluster.address


# --- cases --------------------------------------------------------------------------------------


def cases_for(address, client, n):
    import nbexec

    def raw_submit():
        return timed(lambda: client.gather([client.submit(inc, i, pure=False) for i in range(n)]))

    def nb_submit():
        def go():
            with nbexec.run("dask", address=address):
                [nbexec.submit(inc, i) for i in range(n)]

        return timed(go)

    def raw_map():
        return timed(lambda: client.gather(client.map(inc, range(n), pure=False)))

    def nb_map():
        def go():
            with nbexec.run("dask", address=address):
                nbexec.map(inc, range(n))

        return timed(go)

    return [("raw submit", raw_submit), ("nb submit", nb_submit),
            ("raw map", raw_map), ("nb map", nb_map)]  # fmt: skip


def per_task(ops_list, n):
    """Median handled ops per task (total over ops), and the median count of each op."""
    totals = [sum(ops.values()) for ops in ops_list]
    keys = set().union(*ops_list) if ops_list else set()
    each = {k: median([ops.get(k, 0) for ops in ops_list]) for k in keys}
    return median(totals) / n, each


def bench_shape(shape, sizes, reps):
    import contextlib

    import nbexec

    rows = []
    with contextlib.ExitStack() as stack:
        address = start_shape(shape, stack)
        stack.callback(nbexec.stop)
        with nbexec.run("dask", address=address):
            pass
        client = nbexec.current().client
        client.run_on_scheduler(_install_counters)
        client_counts = _install_client_counters(client)
        for n in sizes:
            cases = [(name, Counted(client, client_counts, fn))
                     for name, fn in cases_for(address, client, n)]  # fmt: skip
            t = interleave([(name, c) for name, c in cases], reps,
                           warmup=0 if n >= 10_000 else 1, label=f"{shape} n={n}")  # fmt: skip
            ops = {name: per_task(c.ops[-reps:], n) for name, c in cases}
            for kind in ("submit", "map"):
                raw, nb = t[f"raw {kind}"], t[f"nb {kind}"]
                raw_ops, raw_each = ops[f"raw {kind}"]
                nb_ops, nb_each = ops[f"nb {kind}"]
                extra = {k: nb_each.get(k, 0) - raw_each.get(k, 0) for k in nb_each}
                extra = {k: v for k, v in extra.items() if v > 0}
                rows.append(dict(
                    shape=shape, n=n, kind=kind,
                    raw_us=median(raw) / n * 1e6, nb_us=median(nb) / n * 1e6,
                    ratio=paired_ratio(raw, nb), cpu=cpu_ratio(raw, nb),
                    raw_ops=raw_ops, nb_ops=nb_ops, extra=extra, raw_each=raw_each,
                    nb_each=nb_each,
                ))  # fmt: skip
    return rows


def print_table(rows, reps):
    print(f"**Dask mode vs the raw client, median of {reps} interleaved runs**\n")
    print("| shape | N | raw | raw µs/task | nbexec | nbexec µs/task | ratio | CPU ratio "
          "| scheduler+client ops/task raw → nbexec | ops nbexec adds per run | budget 1.1x |")  # fmt: skip
    print("|---|---:|---|---:|---|---:|---:|---:|---|---|---|")
    for r in rows:
        print(f"    [{r['shape']} n={r['n']} {r['kind']}] ops raw: {r['raw_each']}; nbexec: {r['nb_each']}",
              file=sys.stderr)  # fmt: skip
        raw = "client.submit loop" if r["kind"] == "submit" else "client.map"
        nb = f"nbexec.{r['kind']}"
        extra = ", ".join(f"{k} {v:g}" for k, v in sorted(r["extra"].items())) or "none"
        ok = "pass" if r["ratio"] <= 1.1 else "**FAIL**"
        print(f"| {r['shape']} | {r['n']:,} | {raw} | {r['raw_us']:,.0f} | {nb} | {r['nb_us']:,.0f} "
              f"| {r['ratio']:.2f}x | {r['cpu']:.2f}x | {r['raw_ops']:.2f} → {r['nb_ops']:.2f} "
              f"| {extra} | {ok} |")  # fmt: skip


def profile(shape, n):
    import contextlib
    import cProfile
    import pstats

    import nbexec

    with contextlib.ExitStack() as stack:
        address = start_shape(shape, stack)
        stack.callback(nbexec.stop)
        with nbexec.run("dask", address=address):
            nbexec.map(inc, range(100))

        def go():
            with nbexec.run("dask", address=address):
                [nbexec.submit(inc, i) for i in range(n)]

        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(go)
        print(f"# {shape} nb submit n={n}: {(time.perf_counter() - t0) / n * 1e6:.0f} µs/task "
              "(under cProfile)")  # fmt: skip
        st = pstats.Stats(prof)
        st.sort_stats("tottime").print_stats(30)
        st.sort_stats("cumulative").print_stats(40)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--shapes", default="inproc,procs,cli")
    p.add_argument("--sizes", default="300,2000,10000")
    p.add_argument("--quick", action="store_true", help="skip 10,000 tasks")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--profile", metavar="SHAPE", default=None)
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    if a.quick:
        sizes = [s for s in sizes if s < 10_000]
    if a.profile:
        profile(a.profile, max(sizes))
        return
    t0 = time.perf_counter()
    print(f"# bench_dask: {machine()}", flush=True)
    rows = []
    for shape in a.shapes.split(","):
        rows += bench_shape(shape, sizes, a.reps)
    print()
    print_table(rows, a.reps)
    print(f"\n_{machine()}; {time.perf_counter() - t0:.0f} s._")


if __name__ == "__main__":
    main()
