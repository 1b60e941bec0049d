"""Dask: a task blocked in C (``time.sleep``) past its timeout fails at once and frees its worker.

The worker's watchdog cannot reach a thread inside ``time.sleep``; the kernel fails the task when
it is still running past its timeout and stops it as ``cancel()`` does: on a cluster nbexec created
its thread leaves the worker's pool and a new one runs the next task; on an external cluster the
worker is reported busy. Times are printed; bounds are far below the sleep they replace.
"""

from __future__ import annotations

import sys
import time

import cloudpickle
import pytest

import nbexec
from nbexec.config.modes import executor_for
from nbexec.core.run import Run
from nbexec.executors.dask import DaskExecutor
from nbexec.session import SessionStatus

cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = [pytest.mark.slow]

SLEEP = 30.0  # what the timed-out task would hold its thread for


@nbexec.task(timeout=1)
def asleep(seconds):
    time.sleep(seconds)
    return seconds


@nbexec.task
def quick():
    return time.time()


def _run_stuck(ex):
    with Run(ex):  # warm up: the worker process, the task's code
        quick()
    t0 = time.monotonic()
    with pytest.raises(nbexec.TaskFailed) as info:
        with Run(ex) as run:
            stuck = asleep(SLEEP)
            after = quick()  # queued behind it on the only thread
    ended = time.monotonic() - t0
    assert isinstance(info.value.__cause__, TimeoutError), repr(info.value.__cause__)
    assert "timeout of 1 s" in str(info.value.__cause__)
    assert stuck.state == "failed" and isinstance(stuck.exception(), TimeoutError)
    started = run.tracker.record(stuck._id).started
    return run, after, started, ended


def test_created_cluster_frees_the_thread_of_a_task_stuck_past_its_timeout():
    ex = executor_for("dask", workers=1, threads_per_worker=1, processes=True)
    with ex.start():
        run, after, started, ended = _run_stuck(ex)
        gap = after.result() - (started + 1)
        print(
            f"\ndask (created, 1 thread): task in time.sleep({SLEEP:g}) with timeout 1 s -> "
            f"next task started {gap:.2f} s after the timeout; run ended after {ended:.2f} s"
        )
        assert run.summary() == {"asleep": {"failed": 1}, "quick": {"success": 1}}
        assert ended < SLEEP / 2 and gap < SLEEP / 3
        assert "busy" not in ex.describe().extra
        with Run(ex):  # the worker serves at its full width
            assert quick().result() > 0


def test_external_cluster_reports_the_busy_thread(dask_cli_cluster):
    ex = DaskExecutor(address=dask_cli_cluster.address)
    with ex.start():
        with Run(ex):
            quick()
        t0 = time.monotonic()
        with pytest.raises(nbexec.TaskFailed) as info:
            with Run(ex):
                stuck = asleep(8)
        ended = time.monotonic() - t0
        assert isinstance(info.value.__cause__, TimeoutError) and stuck.state == "failed"
        print(
            f"\ndask (external): task in time.sleep(8) with timeout 1 s failed after {ended:.2f} s"
        )
        assert ended < 6
        deadline = time.monotonic() + 10
        while not ex.describe().extra.get("busy") and time.monotonic() < deadline:
            time.sleep(0.2)
        info = ex.describe()
        [(address, counts)] = info.extra["busy"].items()
        assert counts == {"timed out": 1}
        text = SessionStatus("dask", {}, None, info).text()
        assert f"busy: {address} still runs 1 timed-out task (not killed)" in text, text
        assert "interrupted" not in text
        # A cancelled task blocked in C is worded as such, next to the timed-out one.
        with Run(ex):
            held = asleep_long(8)
            while held.state != "running":
                time.sleep(0.02)
            held.cancel()
        deadline = time.monotonic() + 6
        info = ex.describe()
        while "interrupted or cancelled" not in _reasons(info) and time.monotonic() < deadline:
            time.sleep(0.2)
            info = ex.describe()
        assert _reasons(info).get("interrupted or cancelled") == 1, info.extra
        text = SessionStatus("dask", {}, None, info).text()
        assert "1 interrupted or cancelled task" in text, text


def _reasons(info):
    """The busy report's counts by reason, over all workers (of an ``ExecutorInfo``)."""
    total: dict[str, int] = {}
    for counts in (info.extra.get("busy") or {}).values():
        for why, n in counts.items():
            total[why] = total.get(why, 0) + n
    return total


@nbexec.task
def asleep_long(seconds):
    time.sleep(seconds)
    return seconds


def test_cancel_of_a_task_stuck_in_c_frees_its_worker_on_a_created_cluster():
    ex = executor_for("dask", workers=1, threads_per_worker=1, processes=True)
    with ex.start():
        with Run(ex):
            quick()
        with Run(ex) as run:
            stuck = asleep_long(SLEEP)
            after = quick()  # queued behind it on the only thread
            deadline = time.monotonic() + 30
            while stuck.state != "running" and time.monotonic() < deadline:
                time.sleep(0.02)
            t0 = time.time()
            assert stuck.cancel()
            done = after.result()
        print(f"\ndask (created, 1 thread): cancel of a task in time.sleep -> next task started "
              f"{done - t0:.2f} s later")  # fmt: skip
        assert stuck.state == "cancelled" and done - t0 < SLEEP / 3
        assert run.summary() == {"asleep_long": {"cancelled": 1}, "quick": {"success": 1}}


@nbexec.task(timeout=0.5, retries=1)
def sleepy_first(path):
    """Sleeps through its timeout on its first attempt (blocked in C), returns at once after."""
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        attempt = len(f.read())
    if attempt == 1:
        time.sleep(SLEEP)
    return attempt


@nbexec.task
def plus_one(x):
    return x + 1


def test_retries_apply_to_a_dask_timeout_of_a_task_blocked_in_c(tmp_path):
    """The kernel stops the first attempt at its timeout and submits the second one (and again
    the task that depends on it); the table says "retrying" meanwhile."""
    path = str(tmp_path / "attempts")
    ex = executor_for("dask", workers=1, threads_per_worker=1, processes=True)
    with ex.start():
        with Run(ex):
            quick()
        seen = set()
        t0 = time.monotonic()
        with Run(ex) as run:
            first = sleepy_first(path)
            then = plus_one(first)
            while first.state not in ("success", "failed", "cancelled"):
                seen.add(first.state)
                time.sleep(0.002)  # "retrying" lasts until attempt 2 reports running (~10 ms+)
        ended = time.monotonic() - t0
        with open(path) as f:
            attempts = len(f.read())
        print(f"\ndask (created, 1 thread): attempt 1 in time.sleep({SLEEP:g}) with timeout 0.5 s, "
              f"retries=1 -> attempt 2 succeeded; run ended after {ended:.2f} s")  # fmt: skip
        assert "retrying" in seen, seen
        assert (first.result(), then.result(), attempts) == (2, 3, 2)
        deadline = time.monotonic() + 10  # the attempt's events may trail its result
        while run.tracker.record(first._id).attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.tracker.record(first._id).attempts == 2
        assert run.summary() == {"sleepy_first": {"success": 1}, "plus_one": {"success": 1}}
        assert ended < SLEEP / 2


def test_a_kernel_timeout_names_task_attempt_limit_worker_and_frames():
    ex = executor_for("dask", workers=1, threads_per_worker=1, processes=True)
    with ex.start():
        run, _, _, _ = _run_stuck(ex)
        message = str(run.futures[0].exception())
        print("\n" + message)
        workers = list(ex.client.scheduler_info()["workers"])
        assert message.startswith(
            "task 'asleep' (attempt 1 of 1) ran longer than its timeout of 1 s"
        )
        assert f"on {workers[0]}" in message
        assert "in asleep" in message and "time.sleep(seconds)" in message


@nbexec.task(timeout=0.5, retries=1)
def held_first(path, seconds):
    """Like ``sleepy_first``, holding its first attempt ``seconds`` seconds."""
    with open(path, "a") as f:
        f.write("x")
    with open(path) as f:
        attempt = len(f.read())
    if attempt == 1:
        time.sleep(seconds)
    return attempt


def test_a_stopped_attempt_on_an_external_cluster_does_not_retry_by_itself(
    dask_cli_cluster, tmp_path
):
    """On an external cluster the first attempt's thread is not interrupted: when its sleep
    returns, its timeout lands; its key was cancelled, so it must not start another attempt
    beside the one the kernel submitted."""
    path = str(tmp_path / "attempts")
    ex = DaskExecutor(address=dask_cli_cluster.address)
    with ex.start():
        t0 = time.monotonic()
        with Run(ex) as run:
            task = held_first(path, 3)
        ended = time.monotonic() - t0
        assert task.result() == 2
        print(f"\ndask (external): attempt 1 held 3 s, timeout 0.5 s, retries=1 -> run ended "
              f"after {ended:.2f} s")  # fmt: skip
        time.sleep(max(0.0, t0 + 5 - time.monotonic()))  # the old thread woke up at 3 s
        assert not _reasons(ex.describe())  # and left its worker
        with open(path) as f:
            assert len(f.read()) == 2
        assert run.summary() == {"held_first": {"success": 1}}


def test_a_mapped_element_timed_out_in_c_is_resubmitted_alone(tmp_path):
    """``task.map`` on Dask: the element whose first attempt sleeps through its timeout gets a
    second attempt (its own element's arguments); the other elements run once."""
    paths = [str(tmp_path / f"attempts-{i}") for i in range(3)]
    for path in paths[1:]:  # these elements start on their second "attempt": no sleep
        with open(path, "w") as f:
            f.write("x")
    ex = executor_for("dask", workers=1, threads_per_worker=2, processes=True)
    with ex.start():
        with Run(ex):
            quick()
        t0 = time.monotonic()
        with Run(ex) as run:
            results = sleepy_first.map(paths)
        ended = time.monotonic() - t0
        assert [f.result() for f in results] == [2, 2, 2]
        counts = []
        for path in paths:
            with open(path) as f:
                counts.append(len(f.read()))
        assert counts == [2, 2, 2]  # element 0 ran twice, the others once (after the seed)
        assert run.summary() == {"sleepy_first": {"success": 3}}
        assert ended < SLEEP / 2


def test_result_called_before_a_timed_out_attempt_waits_for_the_next_one(tmp_path):
    path = str(tmp_path / "attempts")
    ex = executor_for("dask", workers=1, threads_per_worker=1, processes=True)
    with ex.start():
        with Run(ex):
            assert sleepy_first(path).result() == 2  # called while attempt 1 sleeps


def test_result_called_before_the_last_attempt_times_out_raises_the_timeout(tmp_path):
    ex = executor_for("dask", workers=1, threads_per_worker=1, processes=True)
    with ex.start():
        with Run(ex):
            with pytest.raises(TimeoutError, match="asleep"):
                asleep(30).result()  # called while the only attempt sleeps in C
