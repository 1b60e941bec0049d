"""Task control in every mode: per-task output, timeouts, cancelling one task."""

from __future__ import annotations

import sys
import time
from concurrent.futures import CancelledError

import cloudpickle
import pytest
from fixtures_modes import MODES

import nbexec
from nbexec.config.modes import executor_for
from nbexec.core.render import render_html
from nbexec.core.run import Run

# Like a notebook's functions, this module's travel by value: remote workers cannot import it.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@nbexec.task
def chatty(x):
    print(f"out {x}")
    print(f"err {x}", file=sys.stderr)
    if x == 3:
        raise ValueError(f"bad {x}")
    return x


@nbexec.task(retries=1)
def chatty_retried(x):
    print(f"try {x}")
    return x


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("mode", MODES)
def test_output_is_kept_per_task_and_shown_in_failures(executors, mode, capfd):
    with pytest.raises(nbexec.TaskFailed):
        with Run(executors(mode)) as run:
            futures = [chatty(i) for i in range(4)]
            mapped = nbexec.map(chatty_retried, [7, 8])
    # Remote output arrives with the task's events, a moment after its result.
    assert _wait_for(lambda: all(f.output for f in futures + mapped)), [f.output for f in futures]
    for i, f in enumerate(futures):
        assert f.output == f"out {i}\nerr {i}\n"
    assert [f.output for f in mapped] == ["try 7\n", "try 8\n"]
    failure = run.snapshot().failures[0]
    assert failure.output == "out 3\nerr 3"
    assert "out 3" in render_html(run.snapshot(), live=True)
    if mode in ("local", "sync", "threads"):  # printing still reaches the cell's streams
        captured = capfd.readouterr()
        assert "out 2" in captured.out and "err 2" in captured.err


def test_output_is_cut_to_its_tail(executors):
    from nbexec.runtime._taskcall import MAX_OUTPUT

    @nbexec.task
    def loud():
        for _ in range(3000):
            print("x" * 99)

    with Run(executors("threads")):
        f = loud()
    assert f.output.startswith("[... ") and len(f.output) < MAX_OUTPUT + 100
    assert f.output.endswith("x" * 99 + "\n")


@nbexec.task(timeout=0.5)
def spin(seconds):
    """Busy in Python for ``seconds`` (a timeout stops it at its next line in every mode)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


@nbexec.task(timeout=0.5)
def nap(seconds):
    """Blocked in C (``time.sleep``)."""
    time.sleep(seconds)
    return seconds


@pytest.mark.parametrize("mode", MODES)
def test_timeout_fails_the_task_with_timeouterror_and_the_run_goes_on(executors, mode):
    with pytest.raises(nbexec.TaskFailed) as info:
        with Run(executors(mode)) as run:
            slow = spin(30)
            quick = spin(0.01)
            after = spin.map([0.01, 0.02])
    assert isinstance(info.value.__cause__, TimeoutError), repr(info.value.__cause__)
    assert "timeout of 0.5 s" in str(info.value)
    assert slow.state == "failed" and quick.result() == 0.01
    assert [f.result() for f in after] == [0.01, 0.02]
    assert run.summary() == {"spin": {"success": 3, "failed": 1}}


@pytest.mark.timeout(300, method="thread")  # leaves SIGALRM free, as in a kernel
@pytest.mark.parametrize("mode", ["local", "sync", "processes"])
def test_timeout_stops_a_task_blocked_in_c_where_a_signal_reaches_it(executors, mode):
    t0 = time.monotonic()
    with pytest.raises(nbexec.TaskFailed):
        with Run(executors(mode)):
            nap(30)
    assert time.monotonic() - t0 < 20


def test_retries_apply_to_timeouts(executors, tmp_path):
    calls = tmp_path / "calls"

    @nbexec.task(timeout=0.3, retries=2)
    def slow_then_fast():
        with open(calls, "a") as fh:
            fh.write("x")
        if len(calls.read_text()) < 3:
            spin.fn(30)
        return "done"

    with Run(executors("threads")) as run:
        f = slow_then_fast()
    assert f.result() == "done" and calls.read_text() == "xxx"
    assert run.tracker.record(f._id).attempts == 3


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "5", True])
def test_bad_timeouts_are_refused(bad):
    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        nbexec.task(timeout=bad)


@pytest.mark.parametrize("mode", ["threads", "processes", "dask"])
def test_a_timed_out_task_frees_its_only_worker(mode):
    """With one worker, the task queued behind a timed-out one starts soon after the timeout."""
    options = {"workers": 1}
    if mode == "dask":
        options.update(threads_per_worker=1, processes=False)
    ex = executor_for(mode, **options)
    with ex.start():
        with Run(ex) as run:  # warm up (a process child, the cluster)
            spin(0.01)
        t0 = time.monotonic()
        with pytest.raises(nbexec.TaskFailed):
            with Run(ex) as run:
                spin(30)
                after = spin(0.01)
        freed = time.monotonic() - t0
        assert after.result() == 0.01 and run.summary()["spin"] == {"success": 1, "failed": 1}
        print(f"\n{mode}: timeout 0.5 s, next task done after {freed:.2f} s")
        assert freed < 15


def test_a_thread_blocked_in_c_past_its_timeout_is_retired_and_replaced(tmp_path):
    """Threads, one thread: a task in ``time.sleep`` fails at its timeout, the next task runs on a
    replacement thread, and the stuck one never runs another line of its task."""
    after_sleep = tmp_path / "after-sleep"

    @nbexec.task(timeout=0.5)
    def stuck(seconds):
        time.sleep(seconds)
        after_sleep.write_text("ran")  # must never run: the task timed out
        return seconds

    ex = executor_for("threads", workers=1)
    with ex.start():
        with Run(ex):  # warm up the pool's thread
            spin_free(0.01)
        t0 = time.monotonic()
        with pytest.raises(nbexec.TaskFailed) as info:
            with Run(ex) as run:
                blocked = stuck(3)
                after = spin_free(0.01)
        freed = time.monotonic() - t0
        assert isinstance(info.value.__cause__, TimeoutError), repr(info.value.__cause__)
        assert blocked.state == "failed" and after.result() == 0.01
        assert run.summary()["spin_free"] == {"success": 1}
        print(
            f"\nthreads, task in time.sleep(3) with timeout 0.5 s: next task done after {freed:.2f} s"
        )
        assert freed < 2.5  # well before the sleep returns
        time.sleep(3.5 - freed)  # the sleep has returned in the retired thread by now
        assert not after_sleep.exists()
        with Run(ex):  # the pool still serves
            assert spin_free(0.01).result() == 0.01


@nbexec.task
def spin_free(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


@pytest.mark.parametrize("mode", MODES)
def test_cancel_one_running_task_and_the_run_goes_on(executors, mode):
    with Run(executors(mode)):
        long = spin_free(0.01 if mode == "local" else 30)
        others = spin_free.map([0.01, 0.02])
        if mode == "local":  # already done when the call returned: nothing to cancel
            assert long.cancel() is False and long.state == "success"
        else:
            if mode != "sync":  # sync runs lazily: the task is still pending here
                assert _wait_for(lambda: long.state == "running", 30)
            assert long.cancel() is True
            assert long.cancelled() and long.state == "cancelled"
            with pytest.raises(CancelledError):
                long.result()
    assert [f.result() for f in others] == [0.01, 0.02]  # no TaskFailed: cancelled is not failed
    assert long.cancel() is (mode != "local")  # idempotent


@pytest.mark.parametrize("mode", ["sync", "threads", "processes", "dask"])
def test_cancelled_pending_task_never_runs_and_its_dependents_are_cancelled(
    executors, mode, tmp_path
):
    marker = tmp_path / "ran"

    @nbexec.task
    def touch(_):
        marker.write_text("ran")
        return 1

    @nbexec.task
    def plus_one(x):
        return x + 1

    with Run(executors(mode)) as run:
        gates = [spin_free(1.0) for _ in range(2)]  # keep every worker busy
        pending = touch(gates)
        dependent = plus_one(pending)
        assert pending.cancel() is True
    assert not marker.exists()
    assert dependent.state == "cancelled"
    assert run.summary()["touch"] == {"cancelled": 1}


@pytest.mark.parametrize("mode", ["threads", "processes", "dask"])
def test_cancel_frees_the_only_worker_and_run_cancel_stops_the_rest(mode):
    options = {"workers": 1}
    if mode == "dask":
        options.update(threads_per_worker=1, processes=False)
    ex = executor_for(mode, **options)
    with ex.start():
        with Run(ex):  # warm up (a process child, the cluster)
            spin_free(0.01)
        with Run(ex) as run:
            long = spin_free(30)
            after = spin_free(0.01)
            assert _wait_for(lambda: long.state == "running", 30)
            t0 = time.monotonic()
            long.cancel()
            assert after.result(timeout=15) == 0.01
            freed = time.monotonic() - t0
        print(f"\n{mode}: cancel -> next task done after {freed:.3f} s")
        with Run(ex) as run:
            busy = [spin_free(30) for _ in range(3)]
            assert _wait_for(lambda: busy[0].state == "running", 30)
            t0 = time.monotonic()
            assert run.cancel() == 3
        print(f"{mode}: run.cancel() of 3 tasks -> run ended after {time.monotonic() - t0:.3f} s")
        assert run.summary() == {"spin_free": {"cancelled": 3}}
        with Run(ex):  # the executor still works at full capacity
            assert spin_free(0.01).result(timeout=15) == 0.01


@pytest.mark.parametrize("mode", MODES)
def test_routed_output_goes_only_where_the_run_says(executors, mode, capfd):
    """``Run.route_output`` (background cells): tasks submitted one by one and mapped print
    nothing to the streams where they run; the run's writer gets it all, each task's once."""
    shown: list[str] = []
    with pytest.raises(nbexec.TaskFailed):
        with Run(executors(mode)) as run:
            run.route_output(shown.append)
            futures = [chatty(i) for i in range(4)]
            mapped = nbexec.map(chatty_retried, [7, 8])
    assert _wait_for(lambda: all(f.output for f in futures + mapped))
    if mode == "local":  # run inline, in the calling cell: printed there as usual
        assert shown == [] and "out 2" in capfd.readouterr().out
        return
    assert _wait_for(lambda: "try 8" in "".join(shown)), shown
    text = "".join(shown)
    for i in range(4):
        assert text.count(f"out {i}\n") == 1 and text.count(f"err {i}\n") == 1
    assert text.count("try 7\n") == 1 and text.count("try 8\n") == 1
    captured = capfd.readouterr()
    assert "out 2" not in captured.out + captured.err and "try 7" not in captured.out
