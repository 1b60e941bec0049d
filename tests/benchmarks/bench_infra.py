"""nbexec's home-made infrastructure against the standard library, same process, interleaved.

    python tests/benchmarks/bench_infra.py [--reps 5] [--n 10000] [--only pool,future,chunks,snapshot]

Each part interleaves its cases (A B A B ...) after a warm-up round and prints medians and the
median of the per-repetition ratios (home-made / standard):

- pool:     ``InterruptiblePool`` (``pools/_threadpool.py``, the "threads" mode's pool) against
            ``concurrent.futures.ThreadPoolExecutor``, 2 workers each, started outside the timing:
            N x ``submit(inc, i)`` + every result; and ``submit_to`` with a ``SlimFuture``, as runs
            hand work to it. Then what a user sees after stopping a running task (a pure-Python
            loop of 1 s): seconds until the same 1-worker pool returns the next task's result
            (``interrupt`` against ``Future.cancel``, which cannot stop a running call).
- future:   ``SlimFuture`` (``pools/_slimfuture.py``) against ``concurrent.futures.Future``: N x
            (make, claim, set a result, read it), with and without one done callback; and the
            bytes one pending future holds (tracemalloc).
- chunks:   the process pool (``pools/_procpool.py``, 2 children, started and warm outside the
            timing) running N x ``inc`` sent in adaptive chunks (default, up to 128 a message)
            against one task a message (``max_chunk=1``).
- snapshot: a tracker's ``snapshot()`` at 100 and at 100,000 finished tasks, and the live
            table widget's ``refresh()`` on a new snapshot (their cost should not grow with the
            task count: the table is built from per-name counters).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import tracemalloc
from concurrent.futures import Future, ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import interleave, machine, median, paired_ratio, timed  # noqa: E402


def inc(x):
    return x + 1


def busy(seconds):
    """A pure-Python loop: a thread running it reaches the interpreter's checks all the time."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def line(label, a_label, a, b_label, b, n):
    ratio = paired_ratio(a, b)
    return (
        f"| {label} | {n:,} | {a_label} | {median(a) / n * 1e6:.2f} | {b_label} "
        f"| {median(b) / n * 1e6:.2f} | {ratio:.2f}x |"
    )


HEADER = (
    "| what | N | standard library | µs each | nbexec | µs each | nbexec / standard |\n"
    "|---|---:|---|---:|---|---:|---:|"
)


def bench_pool(n, reps):
    from nbexec.pools._slimfuture import SlimFuture
    from nbexec.pools._threadpool import InterruptiblePool

    std, own = ThreadPoolExecutor(2), InterruptiblePool(2)
    try:

        def submit_all(pool):
            def go():
                futures = [pool.submit(inc, i) for i in range(n)]
                for f in futures:
                    f.result()

            return timed(go)

        def submit_to_all():
            def go():
                futures = [SlimFuture() for _ in range(n)]
                for i, f in enumerate(futures):
                    own.submit_to(f, inc, (i,), {})
                for f in futures:
                    f.result()

            return timed(go)

        out = interleave(
            [
                ("std", lambda: submit_all(std)),
                ("own", lambda: submit_all(own)),
                ("own_to", submit_to_all),
            ],
            reps,
            label="pool",
        )
    finally:
        std.shutdown()
        own.shutdown()
    rows = [
        line("thread pool: submit + result", "ThreadPoolExecutor.submit", out["std"],
             "InterruptiblePool.submit", out["own"], n),
        line("thread pool: as a run hands work over", "ThreadPoolExecutor.submit", out["std"],
             "InterruptiblePool.submit_to(SlimFuture)", out["own_to"], n),
    ]  # fmt: skip

    def after_stop(kind):
        pool = ThreadPoolExecutor(1) if kind == "std" else InterruptiblePool(1)
        try:
            running = pool.submit(busy, 1.0)
            time.sleep(0.1)
            t0 = time.perf_counter()
            if kind == "std":
                running.cancel()  # False: a running call cannot be cancelled
            else:
                pool.interrupt([running])
            pool.submit(inc, 1).result()
            return time.perf_counter() - t0
        finally:
            pool.shutdown(wait=True)

    stop = interleave(
        [("std", lambda: after_stop("std")), ("own", lambda: after_stop("own"))],
        reps,
        label="stop",
    )
    rows.append(
        f"| thread pool: next result after stopping a running 1 s task | 1 | Future.cancel "
        f"| {median(stop['std']) * 1e6:,.0f} | InterruptiblePool.interrupt "
        f"| {median(stop['own']) * 1e6:,.0f} | {paired_ratio(stop['std'], stop['own']):.4f}x |"
    )
    return rows


def bench_future(n, reps):
    from nbexec.pools._slimfuture import SlimFuture

    def cycle(cls, callback):
        def go():
            for i in range(n):
                f = cls()
                if callback:
                    f.add_done_callback(_noop)
                f.set_running_or_notify_cancel()
                f.set_result(i)
                f.result()

        return timed(go)

    cases = []
    for cb in (False, True):
        cases += [(f"std{cb}", lambda cb=cb: cycle(Future, cb)),
                  (f"own{cb}", lambda cb=cb: cycle(SlimFuture, cb))]  # fmt: skip
    out = interleave(cases, reps, label="future")
    rows = [
        line("future: make, claim, set, read", "Future", out["stdFalse"], "SlimFuture",
             out["ownFalse"], n),
        line("... with one done callback", "Future", out["stdTrue"], "SlimFuture",
             out["ownTrue"], n),
    ]  # fmt: skip
    sizes = {}
    for name, cls in (("std", Future), ("own", SlimFuture)):
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        kept = [cls() for _ in range(10_000)]
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        sizes[name] = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(kept)
    rows.append(
        f"| future: bytes held by a pending future | 10,000 | Future | {sizes['std']:,.0f} B "
        f"| SlimFuture | {sizes['own']:,.0f} B | {sizes['own'] / sizes['std']:.2f}x |"
    )
    return rows


def _noop(_):
    pass


def bench_chunks(n, reps):
    from nbexec.pools._procpool import ProcPool

    pools = {"chunked": ProcPool(2), "single": ProcPool(2, max_chunk=1)}
    try:
        for pool in pools.values():  # both children up and warm
            for f in [pool.submit(inc, i) for i in range(20)]:
                f.result(timeout=120)

        def run_all(pool):
            def go():
                for f in [pool.submit(inc, i) for i in range(n)]:
                    f.result()

            return timed(go)

        out = interleave(
            [("single", lambda: run_all(pools["single"])),
             ("chunked", lambda: run_all(pools["chunked"]))],
            reps,
            label="chunks",
        )  # fmt: skip
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True)
    return [
        line("process pool: N tasks, 2 children", "one task a message", out["single"],
             "adaptive chunks (<= 128)", out["chunked"], n)
    ]  # fmt: skip


def bench_snapshot(reps):
    from nbexec.core.tracking import Tracker

    def filled(n):
        tracker = Tracker()
        for i in range(n):
            tid = tracker.add(("a", "b", "c")[i % 3], f"k{i}")
            tracker.running(tid, where="w")
            tracker.finish(tid, "success")
        tracker.snapshot()
        return tracker

    small, large = filled(100), filled(100_000)

    def cost(tracker):
        def go():
            for _ in range(200):
                tracker.snapshot()

        return timed(go)

    out = interleave(
        [("small", lambda: cost(small)), ("large", lambda: cost(large))], reps, label="snapshot"
    )
    rows = [
        f"| tracker snapshot (200 calls) | 100 -> 100,000 tasks | at 100 tasks "
        f"| {median(out['small']) / 200 * 1e6:.1f} | at 100,000 tasks "
        f"| {median(out['large']) / 200 * 1e6:.1f} | {paired_ratio(out['small'], out['large']):.2f}x |"
    ]
    return rows + _table_refresh(small, large, reps)


class _TrackerRun:
    """What the table widget needs of a run, around a tracker."""

    def __init__(self, tracker):
        from nbexec.executors import LocalExecutor

        self.tracker, self.executor = tracker, LocalExecutor()

    def snapshot(self):
        return self.tracker.snapshot()


def _table_refresh(small, large, reps):
    from nbexec.widgets.table import RunTable

    def cost(tracker):
        table = RunTable(_TrackerRun(tracker))

        def go():
            for _ in range(40):
                tracker._version += 1  # a new snapshot each time, as during a run
                table.refresh()

        return timed(go)

    out = interleave(
        [("small", lambda: cost(small)), ("large", lambda: cost(large))], reps, label="refresh"
    )
    return [
        f"| live table refresh (40 calls) | 100 -> 100,000 tasks | at 100 tasks "
        f"| {median(out['small']) / 40 * 1e6:.1f} | at 100,000 tasks "
        f"| {median(out['large']) / 40 * 1e6:.1f} | {paired_ratio(out['small'], out['large']):.2f}x |"
    ]


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--only", default="pool,future,chunks,snapshot")
    a = p.parse_args(argv)
    parts = a.only.split(",")
    t0 = time.perf_counter()
    rows = []
    if "pool" in parts:
        rows += bench_pool(a.n, a.reps)
    if "future" in parts:
        rows += bench_future(a.n * 10, a.reps)
    if "chunks" in parts:
        rows += bench_chunks(a.n // 2, a.reps)
    if "snapshot" in parts:
        rows += bench_snapshot(a.reps)
    print(
        f"\n**Home-made parts against the standard library, median of {a.reps} interleaved runs**\n"
    )
    print(HEADER)
    print("\n".join(rows))
    print(f"\n_{machine()}; threads alive at the end: {threading.active_count()}; "
          f"{time.perf_counter() - t0:.0f} s._")  # fmt: skip


if __name__ == "__main__":
    main()
