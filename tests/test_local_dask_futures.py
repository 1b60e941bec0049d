"""One internal future type: a LocalDaskExecutor future is a ``SlimFuture``, and SlimFutures (the
executor's and a run's, finished ones too) work with ``concurrent.futures.wait``/``as_completed``."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import (
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    CancelledError,
    Future,
    as_completed,
    wait,
)

import pytest

from nbexec.executors.local_dask import LocalDaskExecutor, LocalDaskFuture
from nbexec.pools._slimfuture import SlimFuture


def inc(x):
    return x + 1


def boom():
    raise ValueError("boom")


def test_a_local_dask_future_is_a_slimfuture_that_stdlib_wait_returns_before_a_sleeping_task():
    ex = LocalDaskExecutor("threads", num_workers=2)
    with ex.start():
        slow = ex.submit(time.sleep, 3)
        fast = ex.submit(inc, 1)
        assert isinstance(slow, SlimFuture) and isinstance(fast, LocalDaskFuture)
        t0 = time.monotonic()
        done, not_done = wait([slow, fast], timeout=30, return_when=FIRST_COMPLETED)
        assert done == {fast} and not_done == {slow}
        assert time.monotonic() - t0 < 2  # it did not wait for the sleeping task
        assert slow.running() and not slow.done() and fast.result(timeout=0) == 2
        ex.interrupt([slow])


def test_as_completed_yields_a_local_dask_future_as_it_ends_and_first_exception_stops_early():
    ex = LocalDaskExecutor("threads", num_workers=3)
    with ex.start():
        slow = ex.submit(time.sleep, 1)
        fast = ex.submit(inc, 1)
        order = list(as_completed([slow, fast], timeout=30))
        assert order == [fast, slow] and slow.result(timeout=0) is None

        blocker = ex.submit(time.sleep, 3)
        bad = ex.submit(boom)
        t0 = time.monotonic()
        done, not_done = wait([blocker, bad], timeout=30, return_when=FIRST_EXCEPTION)
        assert done == {bad} and not_done == {blocker} and time.monotonic() - t0 < 2
        assert isinstance(bad.exception(timeout=0), ValueError)
        ex.interrupt([blocker])


def test_a_cancelled_local_dask_future_counts_as_done_for_wait():
    ex = LocalDaskExecutor("threads", num_workers=1)
    with ex.start():
        busy = ex.submit(time.sleep, 2)
        queued = ex.submit(inc, 1)  # waits for the only worker
        assert queued.cancel() and queued.cancelled()
        done, not_done = wait([busy, queued], timeout=30, return_when=FIRST_COMPLETED)
        assert done == {queued} and not_done == {busy}
        with pytest.raises(CancelledError):
            queued.result(timeout=0)
        ex.interrupt([busy])


def test_wait_on_a_synchronous_future_runs_the_queued_work_up_to_it():
    ex = LocalDaskExecutor("sync")
    with ex.start():
        a = ex.submit(inc, 1)
        b = ex.submit(inc, a)
        done, not_done = wait([b], timeout=5)
        assert done == {b} and not not_done and b.result(timeout=0) == 3
        assert a.done()


def test_as_completed_yields_each_slimfuture_once_while_another_thread_finishes_them():
    # The future may end while as_completed installs its waiter: it must be yielded once, never
    # twice (as_completed then fails) and never lost (as_completed then hangs). Threads switch
    # every microsecond here, so that such overlaps happen.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _finish_while_as_completed_waits()
    finally:
        sys.setswitchinterval(interval)


def _finish_while_as_completed_waits():
    for _ in range(20):
        futures = [SlimFuture() for _ in range(200)]
        start = threading.Event()

        def finish(futures=futures, start=start):
            start.wait()
            for i, f in enumerate(futures):
                if i % 3 == 0:
                    f.cancel()
                elif i % 3 == 1:
                    f.set_exception(ValueError(i))
                else:
                    f.set_result(i)

        finisher = threading.Thread(target=finish)
        finisher.start()
        start.set()
        seen = list(as_completed(futures, timeout=30))
        finisher.join(10)
        assert len(seen) == len(futures) and set(seen) == set(futures)


def test_wait_mixes_slimfutures_with_stdlib_futures():
    plain: Future = Future()
    slim = SlimFuture()
    threading.Timer(0.2, slim.set_result, (1,)).start()
    done, not_done = wait([plain, slim], timeout=30, return_when=FIRST_COMPLETED)
    assert done == {slim} and not_done == {plain}


def test_a_finished_slimfuture_is_done_and_runs_callbacks_at_once():
    ok = SlimFuture.finished(42)
    bad = SlimFuture.finished(None, ValueError("bad"))
    assert ok.done() and not ok.running() and not ok.cancelled() and not ok.cancel()
    assert ok.result(timeout=0) == 42 and ok.exception(timeout=0) is None
    assert isinstance(bad.exception(), ValueError)
    with pytest.raises(ValueError, match="bad"):
        bad.result()
    seen: list = []
    ok.add_done_callback(seen.append)  # already done: called at once, in this thread
    assert seen == [ok]
    done, not_done = wait([ok, bad], timeout=0)
    assert done == {ok, bad} and not not_done
    assert set(as_completed([ok, bad], timeout=0)) == {ok, bad}
