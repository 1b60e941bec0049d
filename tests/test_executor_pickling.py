"""cloudpickle round-trips of LocalExecutor and LocalDaskExecutor, before and during start()."""

from __future__ import annotations

import cloudpickle
import pytest

from nbexec.executors import LocalExecutor
from nbexec.executors.local_dask import LocalDaskExecutor


def roundtrip(obj):
    return cloudpickle.loads(cloudpickle.dumps(obj))


def test_local_executor_roundtrip():
    ex = LocalExecutor()
    with ex.start():
        copy = roundtrip(ex)
    assert type(copy) is LocalExecutor
    with copy.start():
        assert copy.wait(copy.submit(abs, -2)) == 2


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_local_dask_executor_roundtrip_before_start(scheduler):
    ex = LocalDaskExecutor(scheduler, num_workers=2, foo=1)
    copy = roundtrip(ex)
    assert (copy.scheduler, copy.mode, copy.num_workers) == (ex.scheduler, ex.mode, 2)
    assert copy.dask_config == {"num_workers": 2, "foo": 1}
    assert not copy.started
    with copy.start():
        assert copy.wait(copy.submit(abs, -3)) == 3


@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_local_dask_executor_roundtrip_during_start_with_work_in_flight(scheduler):
    ex = LocalDaskExecutor(scheduler, num_workers=2)
    with ex.start():
        pending = ex.submit(abs, -4)
        copy = roundtrip(ex)
        assert ex.started and not copy.started
        assert copy._pool is None and not copy._active
        with copy.start():  # the copy starts its own pool, independent of the original
            assert copy.wait(copy.submit(abs, -5)) == 5
            assert copy._pool is not ex._pool or scheduler == "sync"
        assert ex.wait(pending) == 4  # the original is unaffected
        assert ex.started


def test_event_channel_emit_pickles():
    ex = LocalDaskExecutor("processes", num_workers=1)
    events = []
    channel = ex.event_channel(lambda *e: events.append(e))
    emit = roundtrip(channel.emit)
    emit("k", "ev", {"a": 1})  # called in this process: delivered directly
    channel.close()
    emit("k", "ev2", {})
    assert events == [("k", "ev", {"a": 1})]
