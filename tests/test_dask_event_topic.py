"""A DaskExecutor's runs share one event topic: subscribed once, events routed per channel.

A real LocalCluster with worker processes; the scheduler's own ``subscribe-topic`` / ``unsubscribe-topic``
stream handlers are wrapped to count what the executor asks of it. Runs in a row subscribe the
topic once and unsubscribe it only at shutdown, and each run's first event is not held back
behind the previous run's batch; two runs at once (one detached, as a background
cell's) each get only their own tasks' events; a closed channel's events are dropped.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

distributed = pytest.importorskip("distributed")

import nbexec  # noqa: E402
from nbexec.executors.dask import DaskExecutor  # noqa: E402

# Like a notebook's functions, this module's travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


@pytest.fixture(scope="module")
def counted_cluster() -> Iterator[tuple[distributed.LocalCluster, list[tuple[str, str]]]]:
    ops: list[tuple[str, str]] = []
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as cluster:
        handlers = cluster.scheduler.stream_handlers
        for op in ("subscribe-topic", "unsubscribe-topic"):
            original = handlers[op]

            def counted(*args, _op=op, _original=original, **kwargs):
                topic = kwargs.get("topic", args[0] if args else "")
                if str(topic).startswith("nbexec-events"):
                    ops.append((_op, topic))
                return _original(*args, **kwargs)

            handlers[op] = counted
        yield cluster, ops


@pytest.fixture
def cluster(counted_cluster) -> tuple[distributed.LocalCluster, list[tuple[str, str]]]:
    """A LocalCluster (worker processes: what tasks print travels as events) and the
    (op, topic) of every nbexec topic (un)subscription its scheduler handled in this test."""
    counted_cluster[1].clear()
    return counted_cluster


def say(name: str) -> str:
    print(f"said {name}")
    return name


def gated(name: str, gate: str) -> str:
    print(f"live {name}")
    while not Path(gate).exists():
        time.sleep(0.02)
    print(f"done {name}")
    return name


def test_runs_in_a_row_subscribe_the_topic_once(cluster):
    cluster, ops = cluster
    executor = DaskExecutor(address=cluster.scheduler_address)
    with executor.start():
        for i in range(3):  # back to back: within the worker's batching delay
            with nbexec.run(executor) as run:
                assert run.submit(say, f"r{i}").result() == f"r{i}"
                # A run's first event is sent at once, ahead of the task's result on the
                # worker's stream: not held back by the previous run's batch.
                assert run.tracker.wait_started(timeout=0)
            assert wait_for(lambda run=run: "said r" in run.tracker.output(0))
        assert wait_for(lambda: len(ops) >= 1)
        time.sleep(0.2)  # an unsubscription would have reached the scheduler by now
        assert [op for op, _ in ops] == ["subscribe-topic"], ops
    assert wait_for(lambda: len(ops) == 2), ops
    assert ops[1] == ("unsubscribe-topic", ops[0][1])  # the user's cluster outlives the executor


def test_concurrent_runs_each_get_only_their_own_events(cluster, tmp_path):
    cluster, ops = cluster
    gate = tmp_path / "gate"
    executor = DaskExecutor(address=cluster.scheduler_address)
    with executor.start():
        background = nbexec.run(executor)
        background.__enter__()
        slow = background.submit(gated, "A", str(gate))
        background.detach()  # as a background cell: the run goes on in another thread
        ender = threading.Thread(target=background.end_detached)
        ender.start()
        try:
            assert wait_for(lambda: "live A" in background.tracker.output(0))
            with nbexec.run(executor) as run:  # task 0 too: only the channel tells them apart
                assert run.submit(say, "B").result() == "B"
        finally:
            gate.touch()
            ender.join(30)
        assert slow.result() == "A"
        assert wait_for(lambda: "done A" in background.tracker.output(0))
        assert wait_for(lambda: "said B" in run.tracker.output(0))
        assert "B" not in background.tracker.output(0)
        assert "A" not in run.tracker.output(0)
        assert len([op for op, _ in ops if op == "subscribe-topic"]) == 1, ops


def test_a_closed_channel_drops_its_events_and_others_go_on(cluster):
    cluster, _ = cluster
    executor = DaskExecutor(address=cluster.scheduler_address)
    with executor.start():
        got: dict[str, list] = {"a": [], "b": []}
        a = executor.event_channel(lambda *e: got["a"].append(e))
        b = executor.event_channel(lambda *e: got["b"].append(e))
        emit_a, emit_b = a.emit, b.emit

        def task(i: int) -> int:
            emit_a(f"a{i}", "running", {"i": i})
            emit_b(f"b{i}", "running", {"i": i})
            return i

        assert executor.wait([executor.submit(task, i) for i in range(4)]) == list(range(4))
        assert wait_for(lambda: len(got["a"]) == 4 and len(got["b"]) == 4), got
        assert sorted(k for k, _, _ in got["a"]) == [f"a{i}" for i in range(4)]
        assert sorted(k for k, _, _ in got["b"]) == [f"b{i}" for i in range(4)]
        a.close()
        executor.wait(executor.submit(task, 9))
        assert wait_for(lambda: len(got["b"]) == 5), got
        time.sleep(0.3)
        assert len(got["a"]) == 4, "events delivered after close()"
        b.close()
