"""TaskFuture keeps the ``concurrent.futures.Future`` contract in every mode: ``wait``,
``as_completed``, ``cancel``/``cancelled``/``running``/``done``, ``add_done_callback`` (called with
the TaskFuture), ``result(timeout)`` and ``exception(timeout)``."""

from __future__ import annotations

import threading
import time
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    CancelledError,
    Future,
    as_completed,
    wait,
)

import pytest

from nbexec import TaskFailed, TaskFuture
from nbexec.core.run import Run
from nbexec.executors import LocalExecutor
from nbexec.executors.local_dask import LocalDaskExecutor


def inc(x):
    return x + 1


def boom(x):
    raise ValueError(f"bad {x}")


def nap(seconds):
    time.sleep(seconds)
    return seconds


def wait_for(flag_path, seconds=5.0):
    import os
    import time

    deadline = time.monotonic() + seconds
    while not os.path.exists(flag_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "released"


for _fn in (inc, boom, nap, wait_for):
    _fn.__module__ = "__main__"  # travel by value, as a notebook's functions do

MODES = ["local", "sync", "threads", "processes", "dask"]
CONCURRENT = ["threads", "processes", "dask"]


def _executor(mode):
    if mode == "local":
        return LocalExecutor()
    if mode == "dask":
        from nbexec.executors.dask import DaskExecutor

        return DaskExecutor(
            cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False}
        )
    return LocalDaskExecutor(mode, num_workers=2)


@pytest.fixture(scope="module", params=MODES)
def executor(request):
    ex = _executor(request.param)
    with ex.start():
        yield ex


def _in_run(executor):
    r = Run(executor)
    try:
        with r:
            yield r
    except TaskFailed:  # the tests that make a task fail check it themselves
        pass


@pytest.fixture
def run(executor):
    yield from _in_run(executor)


def test_wait_all_completed(run):
    futures = [run.submit(inc, i) for i in range(4)]
    done, not_done = wait(futures, timeout=30, return_when=ALL_COMPLETED)
    assert done == set(futures) and not not_done
    assert all(isinstance(f, TaskFuture) and f.done() for f in futures)
    assert [f.result() for f in futures] == [1, 2, 3, 4]


def test_wait_first_exception_and_mixed_with_stdlib_futures(run):
    # A failed TaskFuture in ``done`` would make FIRST_EXCEPTION raise: the stdlib evaluates
    # ``bool(future)``, and a TaskFuture used as a value (a truth test) raises its task's error.
    ok = [run.submit(inc, i) for i in range(3)]
    plain: Future = Future()
    plain.set_result(0)
    done, not_done = wait([*ok, plain], timeout=30, return_when=FIRST_EXCEPTION)
    assert done == {*ok, plain} and not not_done
    waiting: Future = Future()  # never completes
    done, not_done = wait([*ok, waiting], timeout=0.05, return_when=FIRST_COMPLETED)
    assert done == set(ok) and not_done == {waiting}


def test_as_completed_yields_every_future(run):
    futures = [run.submit(inc, i) for i in range(5)]
    seen = list(as_completed(futures, timeout=30))
    assert sorted(seen, key=id) == sorted(futures, key=id)
    assert sorted(f.result() for f in seen) == [1, 2, 3, 4, 5]


def test_add_done_callback_gets_the_task_future(run):
    got: list = []
    called = threading.Event()
    future = run.submit(inc, 41)

    def callback(f):
        got.append((f, f.result()))
        called.set()

    future.add_done_callback(callback)
    run.wait()
    assert called.wait(30)
    assert got == [(future, 42)] and got[0][0] is future
    late: list = []
    future.add_done_callback(late.append)  # already done: called at once, in this thread
    assert late == [future]


def test_a_failing_callback_is_logged_and_the_others_still_run(run, caplog):
    future = run.submit(inc, 1)
    after: list = []
    future.add_done_callback(lambda f: 1 / 0)
    future.add_done_callback(after.append)
    run.wait()
    deadline = time.monotonic() + 10
    while not after and time.monotonic() < deadline:
        time.sleep(0.01)
    assert after == [future]


def test_result_and_exception(run):
    good, bad = run.submit(inc, 1), run.submit(boom, 1)
    assert good.result(timeout=30) == 2 and good.exception(timeout=30) is None
    assert isinstance(bad.exception(timeout=30), ValueError)
    with pytest.raises(ValueError, match="bad 1"):
        bad.result(timeout=30)
    assert not good.cancelled() and not good.running() and good.done()


@pytest.fixture
def concurrent_run(executor):
    if executor.mode not in CONCURRENT:
        pytest.skip("tasks run at submission or at wait in this mode")
    yield from _in_run(executor)


def test_running_cancel_and_timeouts(concurrent_run, tmp_path):
    run = concurrent_run
    flag = str(tmp_path / "go")
    slow = run.submit(wait_for, flag, 30.0)
    with pytest.raises(TimeoutError):
        slow.result(timeout=0.05)
    with pytest.raises(TimeoutError):
        slow.exception(timeout=0.05)
    done, not_done = wait([slow], timeout=0.05)
    assert not done and not_done == {slow}
    deadline = time.monotonic() + 30
    while not slow.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slow.running() and not slow.done()
    called: list = []
    slow.add_done_callback(called.append)
    assert slow.cancel() is True
    assert slow.cancelled() and slow.done() and not slow.running()
    with pytest.raises(CancelledError):
        slow.result()
    with pytest.raises(CancelledError):
        slow.exception()
    done, _ = wait([slow], timeout=30)
    assert done == {slow}
    deadline = time.monotonic() + 10
    while not called and time.monotonic() < deadline:
        time.sleep(0.01)
    assert called == [slow]
    open(flag, "w").close()


def test_wait_first_completed_returns_before_the_slow_one(concurrent_run, tmp_path):
    run = concurrent_run
    flag = str(tmp_path / "go")
    slow, quick = run.submit(wait_for, flag, 30.0), run.submit(inc, 1)
    done, not_done = wait([slow, quick], timeout=30, return_when=FIRST_COMPLETED)
    assert quick in done and slow in not_done
    open(flag, "w").close()
    assert next(as_completed([slow], timeout=30)) is slow
