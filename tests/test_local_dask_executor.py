"""LocalDaskExecutor: arguments, concurrency, chunking, dependencies, dask_get, events, failures."""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
import weakref
from concurrent.futures import CancelledError

import dask
import pytest

from nbexec.executors.local_dask import LocalDaskExecutor

SCHEDULERS = ["threads", "sync", "processes"]


@pytest.mark.parametrize(
    "given, scheduler, mode",
    [
        ("threads", "threads", "threads"),
        ("threading", "threads", "threads"),
        ("THREADS", "threads", "threads"),
        ("processes", "processes", "processes"),
        ("multiprocessing", "processes", "processes"),
        ("sync", "synchronous", "sync"),
        ("synchronous", "synchronous", "sync"),
        ("Single-Threaded", "synchronous", "sync"),
    ],
)
def test_scheduler_names_are_normalised(given, scheduler, mode):
    ex = LocalDaskExecutor(given, num_workers=3, foo="bar")
    assert (ex.scheduler, ex.mode) == (scheduler, mode)
    assert ex.dask_config == {"num_workers": 3, "foo": "bar"}


def test_default_scheduler_is_threads():
    assert LocalDaskExecutor().scheduler == "threads"


@pytest.mark.parametrize("bad", ["distributed", "", "thread", 3])
def test_unknown_scheduler_is_refused_listing_valid_names(bad):
    with pytest.raises(ValueError, match="Unknown scheduler") as info:
        LocalDaskExecutor(bad)
    assert "'threads'" in str(info.value) and "'single-threaded'" in str(info.value)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_num_workers_is_refused(bad):
    with pytest.raises(ValueError, match="num_workers must be a positive int"):
        LocalDaskExecutor("threads", num_workers=bad)


def test_num_workers_defaults():
    with dask.config.set(num_workers=3):
        assert LocalDaskExecutor().num_workers == 3
    assert LocalDaskExecutor().num_workers == (os.cpu_count() or 1)
    assert LocalDaskExecutor(num_workers=5).describe().workers == 5
    info = LocalDaskExecutor("sync", num_workers=5).describe()
    assert (info.mode, info.workers) == ("sync", 1)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_submit_outside_start_is_refused(scheduler):
    ex = LocalDaskExecutor(scheduler, num_workers=1)
    with pytest.raises(ValueError, match="has not been started"):
        ex.submit(abs, 1)


def test_sync_is_lazy_and_runs_in_submission_order():
    calls = []
    ex = LocalDaskExecutor("sync")
    with ex.start():
        a = ex.submit(calls.append, "a")
        b = ex.submit(calls.append, "b")
        c = ex.submit(calls.append, "c")
        assert calls == []
        b.result()
        assert calls == ["a", "b"]
        ex.wait([c, a])
        assert calls == ["a", "b", "c"]
        assert threading.current_thread() is threading.main_thread()


def _slow_interval(seconds):
    t0 = time.time()
    time.sleep(seconds)
    return t0, time.time()


def _max_overlap(intervals):
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    cur = best = 0
    for _, step in points:
        cur += step
        best = max(best, cur)
    return best


def test_num_workers_bounds_thread_concurrency():
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def task():
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1

    ex = LocalDaskExecutor("threads", num_workers=2)
    with ex.start():
        ex.wait([ex.submit(task) for _ in range(8)])
    assert state["max"] == 2


@pytest.mark.slow
def test_num_workers_bounds_process_concurrency():
    ex = LocalDaskExecutor("processes", num_workers=2)
    with ex.start():
        intervals = ex.wait([ex.submit(_slow_interval, 0.2) for _ in range(6)])
    assert _max_overlap(intervals) <= 2  # parallelism itself is checked by the chunking test


@pytest.mark.slow
def test_chunking_still_runs_long_tasks_in_parallel():
    ex = LocalDaskExecutor("processes", num_workers=2)
    with ex.start():
        small = [ex.submit(abs, -i) for i in range(2000)]  # builds up a queue: large chunks
        long = [ex.submit(_slow_interval, 1.0) for _ in range(2)]
        assert ex.wait(small) == list(range(2000))
        intervals = ex.wait(long)
    assert _max_overlap(intervals) == 2


class Blob:
    """A weak-referenceable result."""

    def __init__(self, n):
        self.n = n


def _make_blob(path):
    with open(path, "a") as f:
        f.write("x")
    return Blob(7)


def _size(blob):
    return blob.n


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_upstream_runs_once_and_results_are_freed(scheduler, tmp_path):
    path = tmp_path / "calls"
    ex = LocalDaskExecutor(scheduler, num_workers=2)
    with ex.start():
        up = ex.submit(_make_blob, str(path))
        downs = [ex.submit(_size, up), ex.submit(_size, {"b": [up]}["b"][0])]
        assert ex.wait(downs) == [7, 7]
        assert path.read_text() == "x"  # computed once, never again for later dependents
        assert ex.wait(ex.submit(_size, up)) == 7
        assert path.read_text() == "x"
        ref = weakref.ref(up.result())
        del up, downs
        gc.collect()
        assert ref() is None  # the executor keeps no result once its futures are gone


def _fail():
    raise KeyError("upstream")


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_dependents_of_failed_or_cancelled_tasks_do_not_run(scheduler, tmp_path):
    path = tmp_path / "calls"
    ex = LocalDaskExecutor(scheduler, num_workers=1)
    with ex.start():
        bad = ex.submit(_fail)
        dep = ex.submit(_make_blob, str(path), [bad])
        with pytest.raises(KeyError, match="upstream"):
            dep.result()
        gate = ex.submit(time.sleep, 0.5)  # keeps the single worker busy
        pending = ex.submit(abs, -1)
        assert pending.cancel()
        dep2 = ex.submit(_make_blob, str(path), pending)
        with pytest.raises(CancelledError):
            ex.wait(dep2)
        ex.wait(gate)
    assert not path.exists()


def _where():
    return os.getpid(), threading.current_thread().name


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_dask_get_runs_collections_on_the_pool(scheduler):
    da = pytest.importorskip("dask.array")
    from dask.callbacks import Callback

    ex = LocalDaskExecutor(scheduler, num_workers=2)
    with ex.start():
        x = da.ones(100, chunks=10)
        seen = []
        cb = Callback(posttask=lambda key, *a: seen.append(key))
        assert int(x.sum().compute(scheduler=ex.dask_get, callbacks=[cb._callback])) == 100
        assert seen  # dask's callbacks= reach the scheduler
        with dask.config.set(scheduler=ex.dask_get):
            pid, thread = dask.delayed(_where)().compute()
    if scheduler == "threads":
        assert thread.startswith("nbexec-thread")
    elif scheduler == "processes":
        assert pid != os.getpid()
    else:
        assert (pid, thread) == (os.getpid(), threading.main_thread().name)


def _emit_then_sleep(emit, key):
    emit(key, "started", {"n": 1, "ok": True})
    time.sleep(3.0)
    emit(key, "finished", {"n": 2})
    return os.getpid()


@pytest.mark.slow
def test_event_channel_delivers_from_processes_at_once_and_stops_on_close():
    ex = LocalDaskExecutor("processes", num_workers=1)
    events = []
    with ex.start():
        channel = ex.event_channel(lambda *e: events.append(e))
        f = ex.submit(_emit_then_sleep, channel.emit, "k1")
        deadline = time.time() + 2.5  # well before the task's 3 s sleep ends
        while not events and time.time() < deadline:
            time.sleep(0.01)
        assert events == [("k1", "started", {"n": 1, "ok": True})]
        assert not f.done()  # delivered while the task still runs
        assert f.result() != os.getpid()
        assert events[-1] == ("k1", "finished", {"n": 2})
        channel.close()
        ex.wait(ex.submit(_emit_then_sleep, channel.emit, "k2"))
    assert [e[0] for e in events] == ["k1", "k1"]


def test_process_failures_name_the_task_and_fail_only_it():
    ex = LocalDaskExecutor("processes", num_workers=2)
    with ex.start():
        ctx = {"task_name": "divide", "task_index": 3}
        bad = ex.submit(divmod, 1, 0, extra_context=ctx)
        good = ex.submit(divmod, 7, 2)
        with pytest.raises(ZeroDivisionError) as info:
            bad.result()
        assert bad.key.startswith("divide-3-")
        # The traceback travels back (tblib) and the task is named in a note.
        shown = "".join(traceback.format_exception(info.value))
        assert bad.key in shown and info.value.__traceback__ is not None
        lock_arg = ex.submit(id, threading.Lock())
        lock_result = ex.submit(threading.Lock)
        with pytest.raises(TypeError, match=lock_arg.key):
            lock_arg.result()
        with pytest.raises(TypeError, match=lock_result.key):
            lock_result.result()
        assert good.result() == (3, 1)
        assert ex.wait(ex.submit(abs, -5)) == 5


def test_dead_process_fails_its_task_and_is_replaced():
    from nbexec.pools._procpool import WorkerDiedError

    ex = LocalDaskExecutor("processes", num_workers=2)
    with ex.start():
        before = set(ex._pool.pids)
        f = ex.submit(os._exit, 3)
        with pytest.raises(WorkerDiedError, match=f"exit code 3.*{f.key}"):
            f.result()
        assert ex.wait([ex.submit(abs, -i) for i in range(50)]) == list(range(50))
        after = set(ex._pool.pids)
        assert len(after) == 2 and after != before


def test_interrupt_kills_running_process_tasks_and_keeps_the_pool(tmp_path):
    ex = LocalDaskExecutor("processes", num_workers=2)
    with ex.start():
        running = ex.submit(_slow_interval, 30)
        queued = [ex.submit(_slow_interval, 30) for _ in range(3)]
        time.sleep(0.5)
        t0 = time.time()
        ex.interrupt([running, *queued])
        assert running.cancelled() and all(f.cancelled() for f in queued)
        assert time.time() - t0 < 2
        assert ex.wait(ex.submit(abs, -3)) == 3
        assert len(ex._pool.pids) == 2


def test_failed_process_pool_start_leaves_nothing_behind(monkeypatch):
    import psutil

    before_children = {p.pid for p in psutil.Process().children()}
    monkeypatch.setattr("sys.executable", "/bin/false")  # children exit at once, never ready
    ex = LocalDaskExecutor("processes", num_workers=2)
    with ex.start():  # children start lazily: the first task reports the broken pool
        with pytest.raises(RuntimeError, match="before it started|died"):
            ex.wait(ex.submit(abs, -1))
    assert not ex.started and ex._pool is None
    deadline = time.time() + 5
    while time.time() < deadline:
        left = {p.pid for p in psutil.Process().children()} - before_children
        threads = [t for t in threading.enumerate() if t.name.startswith("nbexec-proc")]
        if not left and not threads:
            break
        time.sleep(0.05)
    assert not left and not threads
