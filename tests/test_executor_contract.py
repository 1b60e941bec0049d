"""One contract suite over every executor: the seed's interface plus nbexec's submit_future."""

from __future__ import annotations

import importlib.util
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager

import cloudpickle
import pytest

import nbexec
from nbexec.executors import LocalExecutor
from nbexec.executors.base import Executor, map_structure
from nbexec.executors.local_dask import LocalDaskExecutor

HAVE_DASK_EXECUTOR = importlib.util.find_spec("nbexec.executors.dask") is not None
needs_dask = pytest.mark.skipif(
    not HAVE_DASK_EXECUTOR, reason="nbexec.executors.dask not written yet"
)


def inc(x):
    return x + 1


def add(x, y):
    return x + y


def total(items, extra):
    return sum(items[0]) + items[1][0] + items[1][1] + extra["k"]


def fail(msg):
    raise ValueError(msg)


# Make the task functions look like notebook-defined ones (module ``__main__``): they then
# travel by value, as a notebook's do, to CLI workers that cannot import this test module.
for _fn in (inc, add, total, fail):
    _fn.__module__ = "__main__"


def _dask_local():
    from nbexec.executors.dask import DaskExecutor

    return DaskExecutor(
        cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False}
    )


@pytest.fixture(
    params=[
        "local",
        "threads",
        "sync",
        "processes",
        pytest.param("dask-local", marks=needs_dask),
        pytest.param("dask-cli", marks=[needs_dask, pytest.mark.slow]),
    ]
)
def make(request):
    """A factory of new, unstarted executors of one kind."""
    kind = request.param
    if kind == "local":
        return LocalExecutor
    if kind in ("threads", "sync", "processes"):
        return lambda: LocalDaskExecutor(kind, num_workers=2)
    if kind == "dask-local":
        return _dask_local
    cluster = request.getfixturevalue("dask_cli_cluster")
    from nbexec.executors.dask import DaskExecutor

    return lambda: DaskExecutor(address=cluster.address)


def test_submit_and_wait_values(make):
    ex = make()
    with ex.start():
        f = ex.submit(inc, 1)
        assert ex.wait(f) == 2
        assert ex.wait([f, ex.submit(add, 1, 2), 7]) == [2, 3, 7]


def test_wait_resolves_nested_structures(make):
    ex = make()
    with ex.start():
        f = ex.submit(inc, 1)
        assert ex.wait({"a": [f, 3], "b": {"c": f}}) == {"a": [2, 3], "b": {"c": 2}}
        assert ex.wait((f, [{"x": (f,)}])) == (2, [{"x": (2,)}])
        assert ex.wait("plain") == "plain"


def test_futures_nested_in_arguments_are_dependencies(make):
    ex = make()
    with ex.start():
        a = ex.submit(inc, 1)
        b = ex.submit(inc, 10)
        c = ex.submit(total, [[a, b], (a, 5)], extra={"k": b})
        # (2 + 11) + 2 + 5 + 11
        assert ex.wait(c) == 31


def test_failure_propagates_with_its_type(make):
    ex = make()
    with ex.start():
        with pytest.raises(ValueError, match="boom"):
            ex.wait(ex.submit(fail, "boom"))
        ok = ex.submit(inc, 1)
        assert ex.wait(ok) == 2  # one failure leaves the executor usable


def test_submit_future_api(make):
    ex = make()
    with ex.start():
        f = ex.submit_future(inc, 1)
        if isinstance(ex, LocalDaskExecutor):  # a SlimFuture: the stdlib's wait takes it
            assert wait([f], timeout=60).done == {f}
        assert f.result(timeout=60) == 2
        assert f.done() and f.exception() is None
        if not type(f).__module__.startswith("distributed"):
            # concurrent.futures: a finished future cannot be cancelled (distributed's can).
            assert not f.cancel()
            assert not f.cancelled() and f.result(timeout=60) == 2
        seen = threading.Event()
        f.add_done_callback(lambda fut: seen.set() if fut is f else None)
        assert seen.wait(10)  # distributed calls it on another thread
        g = ex.submit_future(add, f, 10)
        assert g.result(timeout=60) == 12
        h = ex.submit_future(fail, "bad")
        assert isinstance(h.exception(timeout=60), ValueError)
        k = ex.submit_future(inc, [h])
        assert isinstance(k.exception(timeout=60), ValueError)  # dependents fail with the cause


def test_pickle_before_and_during_start_then_start_the_copy(make):
    ex = make()
    before = cloudpickle.loads(cloudpickle.dumps(ex))
    with ex.start():
        during = cloudpickle.loads(cloudpickle.dumps(ex))
        assert ex.wait(ex.submit(inc, 1)) == 2
    for copy in (before, during):
        assert type(copy) is type(ex)
        with copy.start():
            assert copy.wait(copy.submit(inc, 41)) == 42


def test_start_exit_and_start_again(make):
    ex = make()
    with ex.start():
        assert ex.wait(ex.submit(inc, 1)) == 2
    assert not ex.started
    with ex.start():
        assert ex.started
        assert ex.wait(ex.submit(inc, 2)) == 3


class PrefectStyleExecutor(Executor):
    """A third-party executor written against Prefect 1's API only: start, submit, wait."""

    def __init__(self) -> None:
        super().__init__()
        self.pool: ThreadPoolExecutor | None = None
        self.submitted = 0
        self.starts = 0

    @contextmanager
    def start(self):
        self.starts += 1
        with ThreadPoolExecutor(2) as self.pool:
            yield
        self.pool = None

    def submit(self, fn, /, *args, extra_context=None, **kwargs):
        assert self.pool is not None, "submit outside start()"
        self.submitted += 1
        return self.pool.submit(fn, *args, **kwargs)

    def wait(self, futures):
        return map_structure(lambda f: f.result(), futures, lambda x: isinstance(x, Future))


def test_a_prefect_style_executor_runs_tasks_maps_dependencies_and_failures():
    executor = PrefectStyleExecutor()
    # Started by its user, as Prefect's flow runner does: the run does not start it again.
    with pytest.raises(nbexec.TaskFailed, match="fail") as info, executor.start():
        with nbexec.run(executor) as run:
            a = nbexec.submit(inc, 1)
            b = nbexec.submit(add, a, 10)
            mapped = nbexec.map(inc, range(4))
            bad = nbexec.submit(fail, "no")
            after = nbexec.submit(inc, bad)
    assert isinstance(info.value.__cause__, ValueError)
    assert (a.result(), b.result()) == (2, 12)
    assert [m.result() for m in mapped] == [1, 2, 3, 4]
    assert bad.state == "failed" and after.state == "cancelled"
    assert executor.submitted == 7, "every task but the cancelled one went through its submit"
    assert run.summary()["inc"] == {"success": 5, "cancelled": 1}
    assert executor.starts == 1


def test_a_run_starts_an_unstarted_third_party_executor_and_stops_it():
    executor = PrefectStyleExecutor()
    assert not executor.started
    with nbexec.run(executor):
        assert executor.started and executor.pool is not None
        a = nbexec.submit(inc, 1)
    assert a.result() == 2
    assert executor.starts == 1 and executor.pool is None and not executor.started
    with executor.start():  # started by its user: the run leaves it started
        with nbexec.run(executor):
            b = nbexec.submit(inc, a)
        assert executor.started and executor.starts == 2
    assert b.result() == 3


class BatchingExecutor(PrefectStyleExecutor):
    """A third-party executor that also declares nbexec's batch hooks: map and gather."""

    def __init__(self) -> None:
        super().__init__()
        self.maps: list[int] = []
        self.gathers: list[int] = []

    def map(self, fn, /, *iterables, extra_context=None):
        items = list(zip(*iterables))
        self.maps.append(len(items))
        return [self.submit_future(fn, *args, extra_context=extra_context) for args in items]

    def submit_future(self, fn, /, *args, extra_context=None, **kwargs):
        return self.submit(fn, *args, extra_context=extra_context, **kwargs)

    def gather(self, futures):
        self.gathers.append(len(futures))
        return [f.result() for f in futures]


def test_a_run_uses_the_batch_hooks_an_executor_declares():
    executor = BatchingExecutor()
    with nbexec.run(executor) as run:
        mapped = nbexec.map(inc, range(5))
        one = nbexec.submit(inc, 10)
    assert executor.maps == [5], "one map call for the whole map"
    assert run.resolve({"m": mapped, "one": one}) == {"m": [1, 2, 3, 4, 5], "one": 11}
    assert executor.gathers == [6], "one gather for every value not read yet"


class InlineByDeclaration(Executor):
    """Not a LocalExecutor: declares the inline intake and never sees a submission."""

    intake = "inline"

    def submit(self, fn, /, *args, extra_context=None, **kwargs):
        raise AssertionError("an inline executor's tasks are called by the run")


def test_the_intake_an_executor_declares_decides_the_way_in_not_its_class():
    seen = []
    with nbexec.run(InlineByDeclaration()):
        f = nbexec.submit(lambda: seen.append(threading.current_thread()) or 7)
    assert f.result() == 7 and seen == [threading.current_thread()]

    class OwnSubmit(LocalDaskExecutor):
        calls = 0

        def submit_future(self, fn, /, *args, extra_context=None, **kwargs):
            OwnSubmit.calls += 1
            return super().submit_future(fn, *args, extra_context=extra_context, **kwargs)

    executor = OwnSubmit("threads", num_workers=2)
    assert executor.intake == "futures"  # it changed how work is submitted: no pool hand-over
    with nbexec.run(executor):
        g = nbexec.submit(inc, 1)
    assert g.result() == 2 and OwnSubmit.calls == 1


def test_dask_collections_in_a_run_go_through_the_dask_get_an_executor_declares():
    dask = pytest.importorskip("dask")
    graphs = []

    class Recording(LocalExecutor):
        def dask_get(self, dsk, keys, **kwargs):
            graphs.append(len(dsk))
            return super().dask_get(dsk, keys, **kwargs)

    with nbexec.run(Recording()) as run:
        total = dask.delayed(sum)([dask.delayed(abs)(-i) for i in range(3)]).compute()
    assert total == 3
    assert graphs == [4]  # three abs and their sum, through the declared hook
    assert run.summary() == {"abs": {"success": 3}, "sum": {"success": 1}}

    with nbexec.run(Executor()) as run:  # the default: dask's synchronous scheduler, counted
        assert dask.delayed(abs)(-2).compute() == 2
    assert run.summary() == {"abs": {"success": 1}}
