"""The run contract, once for every mode: values, dependencies, failures, retries, live states."""

from __future__ import annotations

import signal
import sys
import threading
import time
from concurrent.futures import CancelledError

import cloudpickle
import pytest
from fixtures_modes import MODES, REMOTE

import nbexec
from nbexec.config.modes import executor_for
from nbexec.core.render import render_text
from nbexec.core.run import Run
from nbexec.testing import sanitize

# Like a notebook's functions (defined in __main__), this module's travel by value: remote
# workers cannot import it (nor nbexec).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@nbexec.task
def inc(x):
    return x + 1


@nbexec.task
def add(x, y):
    return x + y


@nbexec.task
def total(items):
    flat = []
    for item in items:
        if isinstance(item, dict):
            flat.extend(item.values())
        elif isinstance(item, (list, tuple)):
            flat.extend(item)
        else:
            flat.append(item)
    return sum(flat)


@nbexec.task
def boom(x):
    raise ZeroDivisionError(f"boom {x}")


@nbexec.task(name="slow-boom")
def slow_boom(x):
    time.sleep(0.3)
    raise KeyError(x)


@nbexec.task
def nested(x):
    # Inside a running task's body, calling a task is a plain call.
    return inc(x) * 10


@pytest.mark.parametrize("mode", MODES)
def test_values_and_nested_dependencies_are_the_same_in_every_mode(executors, mode):
    with Run(executors(mode)) as run:
        a = inc(1)
        b = add(a, inc(2))
        c = total([a, {"x": b}, (a, 3)])
        mapped = nbexec.map(inc, range(5))
        n = nested(4)
    assert (a.result(), b.result(), c.result(), n.result()) == (2, 5, 12, 50)
    assert [m.result() for m in mapped] == [1, 2, 3, 4, 5]
    assert run.summary() == {"inc": {"success": 7}, "add": {"success": 1}, "total": {"success": 1},
                             "nested": {"success": 1}}  # fmt: skip
    assert all(f.state == "success" and f.done() for f in run.futures)


@pytest.mark.parametrize("mode", MODES)
def test_failure_fails_only_itself_and_cancels_its_dependents(executors, mode):
    with pytest.raises(nbexec.TaskFailed) as info:
        with Run(executors(mode)) as run:
            first = slow_boom("k")  # fails later than `second`, but was submitted first
            second = boom(1)
            dependent = inc(second)
            deeper = add(dependent, 1)
            unrelated = inc(10)
    error = info.value
    assert error.task_name == "slow-boom"
    assert str(error) == "task 'slow-boom' failed: KeyError: 'k' (1 more task failed)"
    assert isinstance(error.__cause__, KeyError)
    assert first.state == second.state == "failed"
    assert dependent.state == deeper.state == "cancelled"
    assert unrelated.result() == 11
    with pytest.raises(CancelledError, match="upstream task 'boom' failed"):
        dependent.result()
    with pytest.raises(ZeroDivisionError):
        second.result()
    assert run.summary() == {"slow-boom": {"failed": 1}, "boom": {"failed": 1},
                             "inc": {"success": 1, "cancelled": 1}, "add": {"cancelled": 1}}  # fmt: skip


def _flaky(path, fail_times):
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        attempts = len(f.read())
    if attempts <= fail_times:
        raise RuntimeError(f"attempt {attempts} fails")
    return attempts


@pytest.mark.parametrize("mode", MODES)
def test_retries_wait_their_delay_and_count_attempts(executors, mode, tmp_path):
    flaky = nbexec.task(_flaky, retries=2, retry_delay=0.2)
    hopeless = nbexec.task(_flaky, name="hopeless", retries=1, retry_delay=0.0)
    t0 = time.monotonic()
    with pytest.raises(nbexec.TaskFailed, match="hopeless"):
        with Run(executors(mode)) as run:
            ok = flaky(str(tmp_path / "ok"), 2)
            bad = hopeless(str(tmp_path / "bad"), 5)
    assert ok.result() == 3
    assert time.monotonic() - t0 >= 0.4
    # Dask's events travel through the scheduler and may trail the result a little.
    assert _wait_for(lambda: run.tracker.record(ok._id).attempts == 3, 5)
    assert bad.state == "failed" and run.tracker.record(bad._id).attempts == 2


@pytest.mark.parametrize("mode", MODES)
def test_text_view_is_identical_in_every_mode(executors, mode):
    try:
        with Run(executors(mode)) as run:
            a = inc(1)
            nbexec.map(add, [a, 2, 3], [1, 2, 3])
            inc(boom(a))
    except nbexec.TaskFailed:
        pass
    assert render_text(run.snapshot()) == (
        "nbexec tasks: 6 tasks - 4 success, 1 failed, 1 cancelled\n"
        "  inc   1 success, 1 cancelled\n"
        "  add   3 success\n"
        "  boom  1 failed"
    )


def _sleep_then(path, seconds):
    time.sleep(seconds)
    return path


@pytest.mark.parametrize("mode", ["threads", "processes", "dask", REMOTE])
def test_running_means_the_code_is_executing_not_dispatched(mode, request):
    """With one worker slot, the second task stays pending while the first one's code runs."""
    if mode == "dask-remote":
        cluster = request.getfixturevalue("dask_cli_cluster")
        proc = cluster.start_worker(nthreads=1)
        executor = executor_for("dask", address=cluster.address)
    elif mode == "dask":
        executor = executor_for("dask", workers=1, threads_per_worker=1, processes=False)
    else:
        executor = executor_for(mode, workers=1)
    try:
        with executor.start(), Run(executor) as run:
            slow = nbexec.task(_sleep_then, name="slow")
            first = slow("a", 1.5)
            second = slow("b", 1.5)
            seen = _wait_for(lambda: first.state == "running", 10)
            assert seen, f"first task never observed running (state {first.state})"
            if mode != "dask-remote":
                assert second.state == "pending"
            record = run.tracker.record(first._id)
            assert record.where, "where the task runs is recorded"
            assert record.started is not None
    finally:
        if mode == "dask-remote":
            cluster.kill_worker(proc)


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_calling_a_task_outside_a_run_is_a_plain_call():
    assert inc(1) == 2
    assert inc.map([1, 2]) == [2, 3]
    assert nested(1) == 20


def test_dask_collections_compute_on_the_run_executor_and_are_counted(executors):
    da = pytest.importorskip("dask.array")
    import dask

    expected = {  # one row per task prefix, as dask's progress bars count them
        "finalize-hlgfinalizecompute": {"success": 1},
        "sum-partial": {"success": 3},
        "sum": {"success": 11},
    }
    for mode in ("sync", "threads", "dask"):
        with Run(executors(mode)) as run:
            x = da.ones((100,), chunks=10).sum().compute()
            y = dask.delayed(sum)([1, 2, 3]).compute()
        assert (x, y) == (100.0, 6)
        assert run.summary() == expected, mode


def test_task_futures_resolve_inside_containers(executors):
    with Run(executors("threads")) as run:
        values = {"a": [inc(1), 5], "b": (inc(2),)}
    assert run.resolve(values) == {"a": [2, 5], "b": (3,)}


def test_a_future_of_another_run_gives_its_result(executors):
    with Run(executors("local")):
        a = inc(1)
    with Run(executors("threads")) as run:
        b = inc(a)
    assert run.resolve(b) == 3


def test_submit_outside_a_run_names_the_fix():
    with pytest.raises(RuntimeError, match="active run"):
        nbexec.submit(inc, 1)


@pytest.mark.parametrize("mode", ["local", "threads", pytest.param("dask", marks=pytest.mark.slow)])
def test_a_finished_task_keeps_its_record(executors, mode):
    # What a record costs in bytes is measured in tests/benchmarks/bench_runs.py.
    with Run(executors(mode)) as run:
        futures = [inc(i) for i in range(1000)]
    assert [f.result() for f in futures[:3]] == [1, 2, 3]
    assert len(run.tracker) == 1000 and run.tracker.nbytes() > 0
    record = run.tracker.record(500)
    assert record.state == "success" and record.key == futures[500].key
    assert record.started is not None and record.finished >= record.started and record.where


def test_a_snapshot_counts_every_task_of_a_large_tracker():
    # How its cost grows with the task count is measured in tests/benchmarks/bench_infra.py.
    from nbexec.core.tracking import Tracker

    tracker = Tracker()
    for i in range(30_000):
        tid = tracker.add(("a", "b", "c")[i % 3], f"k{i}")
        tracker.running(tid, where="w")
        tracker.finish(tid, "success" if i % 10 else "failed", None if i % 10 else "boom")
    snap = tracker.snapshot()
    assert snap.totals["success"] == 27_000 and snap.totals["failed"] == 3_000
    assert [row.name for row in snap.rows] == ["a", "b", "c"]
    assert sum(row.counts["success"] for row in snap.rows) == 27_000


def test_tracker_is_thread_safe():
    from nbexec.core.tracking import Tracker

    tracker = Tracker()

    def work():
        for _ in range(2000):
            tid = tracker.add("t", "k")
            tracker.running(tid)
            tracker.finish(tid, "success")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = tracker.snapshot()
    assert snap.totals["success"] == 8000 and snap.finished
    assert sum(snap.totals.values()) == 8000


def test_wait_all_wakes_as_soon_as_the_last_task_ends():
    """Finishing threads wake the waiter (it would otherwise sleep its whole timeout)."""
    from nbexec.core.tracking import Tracker

    tracker = Tracker()
    ids = [tracker.add("t", None) for _ in range(2000)]
    late = tracker.add("t", None)
    tracker.finish(ids[0], "success")
    tracker.finish(ids[0], "failed")  # a duplicate report must not wake it early for good

    def finish_all():
        time.sleep(0.2)  # let the waiter go to sleep first
        for task_id in ids[1:]:
            tracker.finish(task_id, "success")
        time.sleep(0.2)
        tracker.finish(late, "success")

    worker = threading.Thread(target=finish_all)
    worker.start()
    t0 = time.monotonic()
    assert tracker.wait_all(timeout=30)
    waited = time.monotonic() - t0
    worker.join()
    assert tracker.snapshot().finished
    assert waited < 10, f"wait_all slept {waited:.1f} s: the last finish did not wake it"


@pytest.mark.parametrize("mode", ["sync", "threads", "processes", "dask"])
def test_interrupt_cancels_open_tasks_and_says_why(executors, mode):
    run = Run(executors(mode))
    with run:
        slow = nbexec.task(_sleep_then, name="slow")
        futures = [slow("x", 0.5) for _ in range(6)]
        run.interrupt()
    states = [f.state for f in futures]
    assert "cancelled" in states and set(states) <= {"cancelled", "success"}, states
    for f in futures:
        if f.state == "cancelled":
            assert run.tracker.record(f._id).error == "interrupted"
            with pytest.raises(CancelledError, match="interrupted"):
                f.result()


def test_run_table_output_is_the_same_in_every_mode(executors):
    bundles = set()
    for mode in ("local", "threads", "processes"):
        try:
            with Run(executors(mode)) as run:
                inc(boom(inc(1)))
        except nbexec.TaskFailed:
            pass
        bundle = run.table._repr_mimebundle_()
        bundles.add((bundle["text/plain"], sanitize(bundle["text/html"])))  # durations normalised
    assert len(bundles) == 1, bundles
    text, html = bundles.pop()
    assert "ZeroDivisionError: boom 2" in html and " s<" not in html and "µs" not in html


def test_a_run_on_an_unstarted_dask_executor_reports_the_task_error():
    """The run starts and stops the executor; the failure is read before the client closes."""
    executor = executor_for("dask", workers=1, processes=False)
    with pytest.raises(nbexec.TaskFailed) as info:
        with Run(executor):
            boom(3)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert not executor.started


def test_an_interrupt_inside_a_local_map_cancels_the_tasks_it_did_not_reach():
    def stop_at_two(i):
        if i == 2:
            signal.raise_signal(signal.SIGINT)  # as a kernel interrupt arrives: between lines
            time.sleep(5)
        return i

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a kernel
    try:
        run = nbexec.run("local")
        with pytest.raises(KeyboardInterrupt):
            with run:
                nbexec.map(stop_at_two, range(5))
    finally:
        signal.signal(signal.SIGINT, before)
    assert run.summary() == {"stop_at_two": {"success": 2, "cancelled": 3}}
