"""DaskExecutor against real schedulers and workers (CLI processes that cannot import nbexec)."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import traceback
from pathlib import Path

import cloudpickle
import distributed
import pytest

import nbexec
from nbexec.executors.dask import DaskExecutor, parse_resources

# Workers cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.reliability


def inc(x: int) -> int:
    return x + 1


def echo_kwargs(x: int, key: str = "", pure: str = "", resources: str = "") -> tuple:
    return (x, key, pure, resources)


def worker_address() -> str:
    return distributed.get_worker().address


def sleep_then_touch(seconds: float, started: str, done: str) -> str:
    Path(started).touch()
    time.sleep(seconds)
    Path(done).touch()
    return done


def touch(path: str) -> str:
    Path(path).touch()
    return path


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- constructor ---------------------------------------------------------------------------------

LOCAL = {"silence_logs": 50, "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, (None, distributed.LocalCluster, LOCAL, {}, {"set_as_default": False})),
        (
            {"debug": True},
            (
                None,
                distributed.LocalCluster,
                {**LOCAL, "silence_logs": 30},
                {},
                {"set_as_default": False},
            ),
        ),
        (
            {"cluster_kwargs": {"silence_logs": 10, "n_workers": 2}},
            (
                None,
                distributed.LocalCluster,
                {**LOCAL, "silence_logs": 10, "n_workers": 2},
                {},
                {"set_as_default": False},
            ),
        ),
        (
            {"cluster_kwargs": {"processes": False}},
            (
                None,
                distributed.LocalCluster,
                {
                    "processes": False,
                    "silence_logs": 50,
                    "dashboard_address": "127.0.0.1:0",
                    "worker_dashboard_address": "127.0.0.1:0",
                },  # fmt: skip
                {},
                {"set_as_default": False},
            ),
        ),
        (
            {"cluster_class": "distributed.LocalCluster"},
            (None, distributed.LocalCluster, LOCAL, {}, {"set_as_default": False}),
        ),
        (
            {"address": "tcp://127.0.0.1:1"},
            ("tcp://127.0.0.1:1", None, None, None, {"set_as_default": False}),
        ),
        (
            {"client_kwargs": {"set_as_default": True, "timeout": 3}},
            (None, distributed.LocalCluster, LOCAL, {}, {"set_as_default": True, "timeout": 3}),
        ),
        (
            {"adapt_kwargs": {"maximum": 2}},
            (None, distributed.LocalCluster, LOCAL, {"maximum": 2}, {"set_as_default": False}),
        ),
    ],
)
def test_constructor_defaults(kwargs, expected):
    e = DaskExecutor(**kwargs)
    assert (
        e.address,
        e.cluster_class,
        e.cluster_kwargs,
        e.adapt_kwargs,
        e.client_kwargs,
    ) == expected
    assert e.client is None and e.mode == "dask" and not e.started


def test_constructor_copies_its_dicts():
    ck = {"n_workers": 1}
    e = DaskExecutor(cluster_kwargs=ck)
    assert ck == {"n_workers": 1} and e.cluster_kwargs is not ck


def test_callable_cluster_class_is_kept():
    def factory():
        return distributed.LocalCluster(processes=False)

    e = DaskExecutor(cluster_class=factory, cluster_kwargs={"n_workers": 1})
    assert e.cluster_class is factory and e.cluster_kwargs == {"n_workers": 1}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"address": "tcp://a:1", "cluster_class": "distributed.LocalCluster"},
            "Cannot specify `address`",
        ),
        ({"address": "tcp://a:1", "cluster_kwargs": {}}, "Cannot specify `address`"),
        ({"address": "tcp://a:1", "adapt_kwargs": {"maximum": 2}}, "no effect"),
        ({"address": "tcp://a:1", "debug": True}, "no effect"),
        ({"cluster_class": "distributed.SpecCluster", "debug": True}, "only sets the log level"),
        ({"cluster_class": "os.system"}, "'os.system' is not a distributed.deploy.Cluster"),
        (
            {"cluster_class": "collections.OrderedDict"},
            "'collections.OrderedDict' is not a distributed",
        ),
        ({"cluster_class": "no_such_module.Cluster"}, "nothing importable"),
        ({"scale": -1}, "scale"),
    ],
)
def test_constructor_refuses(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DaskExecutor(**kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"cluster_kwargs": [1]}, "cluster_kwargs"),
        ({"client_kwargs": "x"}, "client_kwargs"),
        ({"adapt_kwargs": 3}, "adapt_kwargs"),
        ({"address": 8786}, "address"),
        ({"cluster_class": 3}, "cluster_class"),
    ],
)
def test_constructor_bad_types(kwargs, name):
    with pytest.raises(TypeError, match=name):
        DaskExecutor(**kwargs)


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["dask-resource:GPU=1"], {"GPU": 1.0}),
        (["DASK-RESOURCE:gpu=2.5"], {"gpu": 2.5}),
        (["dask-resources:MEM=20e9"], {"MEM": 2e10}),
        (["dask-resource:a:b=1"], {"a": 1.0}),
        (["other", "dask-resource:A=1", "dask-resource:B=2"], {"A": 1.0, "B": 2.0}),
        ([], {}),
    ],
)
def test_parse_resources(tags, expected):
    assert parse_resources(tags) == expected


@pytest.mark.parametrize("tag", ["dask-resource:GPU", "dask-resource:GPU=x", "dask-resource=1"])
def test_parse_resources_malformed(tag):
    with pytest.raises(ValueError, match=tag.split("=")[0]):
        parse_resources([tag])


def test_not_started():
    e = DaskExecutor(address="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="has not been started"):
        e.submit(inc, 1)
    with pytest.raises(ValueError, match="has not been started"):
        e.wait([1])
    assert e.describe().mode == "dask"


# --- against the CLI cluster ---------------------------------------------------------------------


@pytest.fixture
def ext(dask_cli_cluster):
    """A DaskExecutor started on the CLI cluster."""
    executor = DaskExecutor(address=dask_cli_cluster.address)
    with executor.start():
        yield executor


@pytest.fixture(scope="module")
def slot_worker(dask_cli_cluster):
    """One more CLI worker, 1 thread, with resource SLOT=1 (no other worker has it)."""
    proc = dask_cli_cluster.start_worker("--resources", "SLOT=1", nthreads=1)
    yield proc
    dask_cli_cluster.kill_worker(proc)


def test_keys_kwargs_and_nested_wait(ext):
    f = ext.submit(
        echo_kwargs,
        1,
        key="k",
        pure="p",
        resources="r",
        extra_context={"task_name": "echo", "task_index": 3, "task_tags": []},
    )
    assert isinstance(f, distributed.Future)
    assert f.key.startswith("echo-3-") and len(f.key) == len("echo-3-") + 32
    assert f.result(timeout=30) == (1, "k", "p", "r")
    g = ext.submit(inc, 1, extra_context={"task_name": "inc"})
    assert g.key.startswith("inc-") and g.key.count("-") == 1
    h = ext.submit(inc, g)  # a future as argument is a dependency
    assert h.key.startswith("inc-")
    assert ext.wait({"a": [h, 3], "b": {"c": g}, "d": (g, "x")}) == {
        "a": [3, 3],
        "b": {"c": 2},
        "d": (2, "x"),
    }
    assert ext.submit_future(inc, 5).result(timeout=30) == 6
    assert ext.wait(ext.map(inc, [1, 2, 3], extra_context={"task_name": "m"})) == [2, 3, 4]


def test_describe(ext, dask_cli_cluster):
    info = ext.describe()
    assert info.mode == "dask" and info.address == dask_cli_cluster.address
    assert info.workers >= 2 and info.threads >= 4 and info.memory >= 2 * 2**30
    assert info.dashboard_link.startswith("http://127.0.0.1:")


def test_describe_survives_a_bad_dashboard_template(ext):
    import dask

    with dask.config.set({"distributed.dashboard.link": "{NBEXEC_NO_SUCH_VAR}/status"}):
        assert ext.describe().dashboard_link is None


def test_resources_route_to_the_worker_that_has_them(ext, slot_worker, dask_cli_cluster):
    with dask_cli_cluster.client() as c:
        slot_addr = next(
            a
            for a, w in c.scheduler_info(n_workers=-1)["workers"].items()
            if w.get("resources", {}).get("SLOT")
        )
    tagged = [
        ext.submit(
            worker_address, extra_context={"task_name": "w", "task_tags": ["dask-resource:SLOT=1"]}
        )
        for _ in range(6)
    ]
    assert set(ext.wait(tagged)) == {slot_addr}
    with pytest.raises(ValueError, match="dask-resource:SLOT"):
        ext.submit(inc, 1, extra_context={"task_name": "w", "task_tags": ["dask-resource:SLOT"]})


def test_exit_on_external_cluster_waits_for_running_and_drops_pending(
    dask_cli_cluster, slot_worker, tmp_path
):
    e = DaskExecutor(address=dask_cli_cluster.address)
    slot = {"task_name": "s", "task_tags": ["dask-resource:SLOT=1"]}
    with e.start():
        a = e.submit(
            sleep_then_touch, 1.5, str(tmp_path / "a0"), str(tmp_path / "a1"), extra_context=slot
        )
        b = e.submit(touch, str(tmp_path / "b"), extra_context=slot)  # queued behind a
        assert wait_for(lambda: (tmp_path / "a0").exists())
        t0 = time.monotonic()
    assert (tmp_path / "a1").exists(), "the running task was not waited for"
    assert time.monotonic() - t0 < 10
    time.sleep(1.5)
    assert not (tmp_path / "b").exists(), "a pending task started after exit"
    assert e.client is None and not e.started and a.key and b.key


def test_exit_on_created_cluster_waits_for_running_work_and_closes_it(tmp_path):
    e = DaskExecutor(cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "processes": False})
    with e.start():
        cluster = e._cluster
        e.submit(sleep_then_touch, 1.0, str(tmp_path / "a0"), str(tmp_path / "a1"))
        later = e.submit(touch, str(tmp_path / "b"))
        assert wait_for(lambda: (tmp_path / "a0").exists())
    assert cluster.status.name == "closed" and e.client is None
    assert (tmp_path / "a1").exists(), "leaving normally must wait for running work (as Prefect)"
    time.sleep(1.5)
    assert not (tmp_path / "b").exists() and later.key


def test_exception_in_block_propagates_and_restart_works():
    e = DaskExecutor(cluster_kwargs={"n_workers": 1, "processes": False})
    with pytest.raises(RuntimeError, match="boom"):
        with e.start():
            raise RuntimeError("boom")
    assert e.client is None
    with e.start():
        assert e.wait(e.submit(inc, 1)) == 2


def test_performance_report_is_written(dask_cli_cluster, tmp_path, caplog):
    path = tmp_path / "report.html"
    e = DaskExecutor(address=dask_cli_cluster.address, performance_report_path=str(path))
    with e.start():
        e.wait([e.submit(inc, i) for i in range(5)])
    assert path.exists() and "<html" in e.performance_report.lower()
    caplog.set_level(logging.WARNING)
    assert DaskExecutor().performance_report == ""
    assert "performance_report_path" in caplog.text


def test_pickled_copies_start_on_their_own(dask_cli_cluster):
    e = DaskExecutor(address=dask_cli_cluster.address)
    before = cloudpickle.loads(cloudpickle.dumps(e))
    with e.start():
        during = cloudpickle.loads(cloudpickle.dumps(e))
        assert during.client is None and e.client is not None
        for copy in (before, during):
            with copy.start():
                assert copy.wait(copy.submit(inc, 1)) == 2
        assert e.wait(e.submit(inc, 2)) == 3
    assert e.client is None


def test_event_channel_from_worker_without_nbexec(ext):
    got: list = []
    channel = ext.event_channel(lambda *a: got.append(a))
    emit = channel.emit

    def task(i):
        emit(f"k{i}", "running", {"i": i, "ok": True})
        return i

    assert ext.wait([ext.submit(task, i) for i in range(5)]) == list(range(5))
    assert wait_for(lambda: len(got) == 5), got
    assert sorted(got) == [(f"k{i}", "running", {"i": i, "ok": True}) for i in range(5)]
    channel.close()
    ext.wait(ext.submit(task, 9))
    time.sleep(0.5)
    assert len(got) == 5, "events delivered after close()"


class Recorder(DaskExecutor):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.seen = []

    async def on_worker_status_changed(self, op, message):
        self.seen.append((op, message))


def test_worker_add_remove_hook(dask_cli_cluster):
    e = Recorder(address=dask_cli_cluster.address)
    with e.start():
        before = set(e.client.scheduler_info(n_workers=-1)["workers"])
        proc = dask_cli_cluster.start_worker(nthreads=1)
        after = set(e.client.scheduler_info(n_workers=-1)["workers"])
        (new,) = after - before
        assert wait_for(lambda: ("add", {"workers": {new: {}}}) in e.seen), e.seen
        dask_cli_cluster.kill_worker(proc)
        assert wait_for(lambda: ("remove", new) in e.seen), e.seen


def test_interrupt_on_external_cluster_cancels_without_killing(
    ext, dask_cli_cluster, slot_worker, tmp_path
):
    pids = dask_cli_cluster.worker_pids
    slot = {"task_name": "s", "task_tags": ["dask-resource:SLOT=1"]}
    a = ext.submit(
        sleep_then_touch, 1.0, str(tmp_path / "a0"), str(tmp_path / "a1"), extra_context=slot
    )
    b = ext.submit(touch, str(tmp_path / "b"), extra_context=slot)
    assert wait_for(lambda: (tmp_path / "a0").exists())
    ext.interrupt([a, b])
    assert wait_for(lambda: a.cancelled() and b.cancelled())
    assert wait_for(lambda: (tmp_path / "a1").exists()), (
        "running work on an external cluster was killed"
    )
    time.sleep(0.5)
    assert not (tmp_path / "b").exists()
    assert dask_cli_cluster.worker_pids == pids
    assert ext.wait(ext.submit(inc, 1)) == 2


def test_interrupt_on_created_cluster_stops_running_task(local_cluster_executor, tmp_path):
    e = local_cluster_executor
    a = e.submit(sleep_then_touch, 1.0, str(tmp_path / "a0"), str(tmp_path / "a1"))
    assert wait_for(lambda: (tmp_path / "a0").exists())
    e.interrupt([a])
    time.sleep(1.5)
    assert a.cancelled() and not (tmp_path / "a1").exists()
    assert e.wait(e.submit(inc, 1)) == 2


# --- tracebacks ---------------------------------------------------------------------------------


def fails_here(x):
    raise ValueError(f"bad value {x}")


def test_failure_traceback_from_a_worker_names_the_users_file(ext):
    with pytest.raises(nbexec.TaskFailed) as info:
        with nbexec.run(ext):
            nbexec.submit(fails_here, 3)
    shown = "".join(traceback.format_exception(info.value.__cause__))
    assert shown.splitlines()[1].startswith(f'  File "{__file__}", line ')
    assert 'raise ValueError(f"bad value {x}")' in shown and "<dynamic-code>" not in shown
    assert "_nbexec_remote" not in shown and "distributed" not in shown


# --- cost ----------------------------------------------------------------------------------------


def fail(x: int) -> int:
    raise ValueError(f"bad {x}")


def test_on_done_calls_back_once_for_every_outcome(ext):
    """Finished before or after it is watched, erred, cancelled, already awaited elsewhere."""
    calls: list[tuple] = []

    def callback(f):
        error = f.exception() if f.status == "error" else None  # needs a thread off the loop
        calls.append((f.key, f.status, type(error).__name__))

    early = ext.submit(inc, 1)
    ext.wait(early)
    later = ext.submit(sleep_then_touch, 0.3, os.devnull, os.devnull)
    erred = ext.submit(fail, 2)
    cancelled = ext.submit(time.sleep, 5)
    cancelled.cancel()
    awaited = ext.submit(time.sleep, 0.5)
    waiter = threading.Thread(target=ext.wait, args=([awaited],))
    waiter.start()
    time.sleep(0.1)
    futures = [early, later, erred, cancelled, awaited]
    for f in futures:
        ext.on_done(f, callback)
    assert wait_for(lambda: len(calls) >= len(futures))
    waiter.join(10)
    time.sleep(0.3)  # no second call
    assert sorted(calls) == sorted([
        (early.key, "finished", "NoneType"),
        (later.key, "finished", "NoneType"),
        (erred.key, "error", "ValueError"),
        (cancelled.key, "cancelled", "NoneType"),
        (awaited.key, "finished", "NoneType"),
    ])  # fmt: skip


def test_a_task_of_a_main_function_is_pickled_once(ext):
    """The user's function travels inside ByValue, whose bytes never show ``__main__``."""
    import types

    from distributed.protocol.pickle import dumps

    import _nbexec_remote as rt

    main_inc = types.FunctionType(inc.__code__, {"__name__": "__main__"}, "inc")
    main_inc.__module__ = "__main__"
    wrapped = rt.ByValue(main_inc)
    data = dumps(wrapped)
    assert b"__main__" not in data and b"__main__" in wrapped.data
    assert pickle.loads(data)(41) == 42
    assert ext.wait(ext.submit(main_inc, 1)) == 2


def _count_scheduler_ops(on: bool, dask_scheduler=None) -> dict:
    """Wrap (on) or unwrap (off) every scheduler handler in a counter; return the counts so far."""
    import functools
    import inspect

    saved = getattr(dask_scheduler, "_test_saved_handlers", None)
    counts = getattr(dask_scheduler, "_test_op_counts", {})
    if on and saved is None:
        counts = dask_scheduler._test_op_counts = {}
        saved = dask_scheduler._test_saved_handlers = {}
        for table in (dask_scheduler.stream_handlers, dask_scheduler.handlers):
            for op, handler in list(table.items()):
                saved[id(table), op] = handler

                def make(op=op, handler=handler):
                    if inspect.iscoroutinefunction(handler):

                        @functools.wraps(handler)
                        async def counted(*args, **kwargs):
                            counts[op] = counts.get(op, 0) + 1
                            return await handler(*args, **kwargs)

                    else:

                        @functools.wraps(handler)
                        def counted(*args, **kwargs):
                            counts[op] = counts.get(op, 0) + 1
                            return handler(*args, **kwargs)

                    return counted

                table[op] = make()
    elif not on and saved is not None:
        for table in (dask_scheduler.stream_handlers, dask_scheduler.handlers):
            for op in table:
                table[op] = saved.get((id(table), op), table[op])
        del dask_scheduler._test_saved_handlers
    return dict(counts)


def test_no_scheduler_message_per_task_beyond_the_raw_clients(ext):
    """What reaches the scheduler per task is what a raw client.submit loop sends; nbexec's
    events travel batched per worker; tasks open no worker clients nor distributed Events."""
    client = ext.client
    n = 200

    def ops(work) -> dict:
        before = client.run_on_scheduler(_count_scheduler_ops, True)
        work()
        time.sleep(0.5)  # releases and the last event batch reach the scheduler
        after = client.run_on_scheduler(_count_scheduler_ops, True)
        return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}

    def raw():
        client.gather([client.submit(abs, -i, pure=False) for i in range(n)])

    elapsed = []

    def ours():
        t0 = time.monotonic()
        with nbexec.run(ext):
            [nbexec.submit(abs, -i) for i in range(n)]
        elapsed.append(time.monotonic() - t0 + 0.5)

    n_clients = len(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))
    try:
        raw_ops, our_ops = ops(raw), ops(ours)
    finally:
        client.run_on_scheduler(_count_scheduler_ops, False)
    print(f"\nscheduler ops for {n} tasks: raw {raw_ops}\nnbexec {our_ops}")
    assert raw_ops["update-graph"] == our_ops["update-graph"] == n
    assert raw_ops["task-finished"] == our_ops["task-finished"] == n
    # Events: at most one batch per worker per FLUSH_DELAY (0.1 s), however many tasks ran.
    n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
    assert 0 < our_ops.get("log-event", 0) <= n_workers * (elapsed[0] / 0.1 + 2), our_ops
    # Otherwise a few per run (subscribe, worker count), none per task (heartbeats come by time).
    timed = ("log-event", "heartbeat_worker")
    extra = {k: v - raw_ops.get(k, 0) for k, v in our_ops.items() if k not in timed}
    assert sum(v for v in extra.values() if v > 0) <= 5, extra
    # Structural: no task opened a worker client or a distributed.Event (Prefect's per-task check).
    assert not any(client.run(lambda dask_worker: dask_worker._client is not None).values())
    events = client.run_on_scheduler(
        lambda dask_scheduler: len(dask_scheduler.extensions["events"]._events)
    )
    assert events == 0
    assert (
        len(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))
        == n_clients
    )


# --- SIGINT to the process group -----------------------------------------------------------------

SIGINT_SCRIPT = textwrap.dedent(
    """
    import os, sys, time, psutil
    from pathlib import Path
    from nbexec.executors.dask import DaskExecutor

    def work(d):
        Path(d, "started").touch()
        time.sleep(2)
        Path(d, "effect").touch()

    if __name__ == "__main__":
        d = sys.argv[1]
        e = DaskExecutor(cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "processes": True})
        with e.start():
            pids = sorted(e.client.run(os.getpid).values())
            f = e.submit(work, d)
            print("READY", pids, flush=True)
            try:
                time.sleep(30)
            except KeyboardInterrupt:
                e.interrupt([f])
                time.sleep(0.5)
                alive = all(psutil.pid_exists(p) for p in pids)
                again = sorted(e.client.run(os.getpid).values())
                print("AFTER", alive, again == pids, e.wait(e.submit(abs, -3)), flush=True)
                time.sleep(3)
                print("EFFECT", Path(d, "effect").exists(), flush=True)
    """
)


def test_sigint_to_process_group_spares_created_workers(tmp_path):
    script = tmp_path / "sigint_script.py"
    script.write_text(SIGINT_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY"), line + proc.stderr.read()
        assert wait_for(lambda: (tmp_path / "started").exists(), timeout=20)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "AFTER True True 3" in out, out + err
    assert "EFFECT False" in out, out + err
