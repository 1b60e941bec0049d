"""ProcPool reports when a task really started executing in a child (``SlimFuture.set_started``).

Real child processes, no mocks. A task running ``STARTED_AFTER`` seconds is reported while it
runs (a ``KIND_STARTED`` frame); every task is reported again, with the same start time, by its
result frame; short tasks send no extra frame.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

import _nbexec_remote
from nbexec.pools import _procchild
from nbexec.pools import _procworker as pw
from nbexec.pools._procpool import ProcPool
from nbexec.pools._slimfuture import SlimFuture


class Recorder(SlimFuture):
    """Records every ``set_started`` call: ``(t, where, done_then, seen_at)``."""

    __slots__ = ("calls", "started")

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[float, str, bool, float]] = []
        self.started = threading.Event()

    def set_started(self, t: float, where: str) -> None:
        self.calls.append((t, where, self.done(), time.time()))
        self.started.set()


class Counter(SlimFuture):
    """Only counts ``set_started`` calls (cheap enough for thousands of tasks)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def set_started(self, t: float, where: str) -> None:
        self.n += 1


@pytest.fixture
def pool():
    p = ProcPool(2)
    try:
        yield p
    finally:
        p.shutdown(wait=False)


def _wheres(pool: ProcPool) -> set[str]:
    return {f"pid {pid}" for pid in pool.pids}


def _submit(pool: ProcPool, future: SlimFuture, fn, *args) -> SlimFuture:
    pool.submit_to(future, fn, args, {})
    return future


def _sleep_then_raise(seconds: float) -> None:
    time.sleep(seconds)
    raise ValueError("late failure")


def _emit_from_threads(channel: str, n_threads: int, n_events: int, seconds: float) -> int:
    """Emit from several threads while the task runs long enough to be reported started."""
    emit = pw.ProcEmit(channel)
    payload = "x" * 5000  # frames longer than one atomic pipe write would interleave if unlocked

    def burst(i: int) -> None:
        for j in range(n_events):
            emit(f"k{i}", "tick", {"j": j, "pad": payload})

    threads = [threading.Thread(target=burst, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    burst(n_threads)  # the task's own thread too
    for t in threads:
        t.join()
    time.sleep(seconds)
    return os.getpid()


def test_long_task_is_reported_started_while_it_runs(pool):
    # The task executes from t (its start in the child) to at least t + 1.0: a call seen before
    # t + 0.8 was seen while it ran. Timing from submission instead would also count the dispatch
    # (and imports in a fresh child), which a loaded machine can stretch.
    submitted = time.time()
    f = _submit(pool, Recorder(), time.sleep, 1.0)
    assert f.started.wait(10)
    t, where, done_then, seen = f.calls[0]
    assert not done_then
    assert submitted - 0.01 <= t <= seen <= time.time()
    assert seen - t < 0.8, "set_started only once the task had ended"
    assert seen - t >= pw.STARTED_AFTER - 0.005  # reported only once it ran STARTED_AFTER
    assert where in _wheres(pool)
    assert f.result(10) is None
    # The result frame reports it again, with the same start time and place (SlimFuture
    # subclasses ignore repeats); the child sent one KIND_STARTED frame, not more.
    assert [c[:2] for c in f.calls] == [(t, where), (t, where)]


def test_short_task_is_reported_started_at_completion(pool):
    submitted = time.time()
    f = _submit(pool, Recorder(), abs, -3)
    assert f.result(10) == 3
    seen = time.time()
    assert len(f.calls) == 1
    t, where, done_then, _ = f.calls[0]
    assert not done_then  # called before the future finished
    assert submitted - 0.01 <= t <= seen
    assert where in _wheres(pool)


def test_failing_long_task_is_reported_started_too(pool):
    f = _submit(pool, Recorder(), _sleep_then_raise, 1.0)
    assert f.started.wait(10)
    t, _, _, seen = f.calls[0]
    assert seen - t < 0.8  # while it ran (see above)
    with pytest.raises(ValueError, match="late failure"):
        f.result(10)
    assert len(f.calls) == 2 and f.calls[0][:2] == f.calls[1][:2]


def test_many_short_tasks_send_no_started_frames(pool):
    # A STARTED frame for ``abs`` needs the child's main thread to stall >= STARTED_AFTER inside
    # the call itself (a few hundred ns per task): on a loaded machine this may happen once in a
    # while, so allow 1%. A pool reporting every task (or a watcher using a stale start time)
    # would report ~all 2,000.
    fs = [_submit(pool, Counter(), abs, -i) for i in range(2000)]
    assert [f.result(60) for f in fs] == list(range(2000))
    counts = [f.n for f in fs]
    assert min(counts) == 1 and max(counts) <= 2  # never twice for one task
    assert sum(n == 2 for n in counts) <= 20


def test_short_tasks_that_release_the_gil_send_no_started_frames(pool):
    # ``abs`` holds the GIL, so the watcher thread hardly ever sees it running; a 2 ms sleep lets
    # it look at every moment of a ~0.25 s chunk: only each task's own start time keeps it quiet.
    # A sleep can overshoot STARTED_AFTER on a loaded machine: allow 5%.
    fs = [_submit(pool, Counter(), time.sleep, 0.002) for _ in range(500)]
    for f in fs:
        f.result(60)
    counts = [f.n for f in fs]
    assert min(counts) == 1 and max(counts) <= 2
    assert sum(n == 2 for n in counts) <= 25


def test_each_task_of_a_chunk_is_reported_once_while_it_runs():
    pool = ProcPool(1)
    try:
        fs = [_submit(pool, Recorder(), time.sleep, 0.15) for _ in range(8)]
        for f in fs:
            f.result(30)
        assert all(len(f.calls) in (1, 2) for f in fs)
        # Detection takes ~STARTED_AFTER of each 0.15 s: only a badly stalled child misses one.
        assert sum(len(f.calls) == 2 for f in fs) >= 6
        starts = [f.calls[-1][0] for f in fs]
        assert starts == sorted(starts) and len(set(starts)) == 8
        for f in fs:
            assert len({c[:2] for c in f.calls}) == 1  # same start time both times
    finally:
        pool.shutdown(wait=False)


def test_child_frames_started_once_before_the_result_and_never_after():
    """The raw frames of one child: exactly one KIND_STARTED, for the long task, before its result."""
    import pickle
    import queue

    import cloudpickle

    frames: queue.Queue = queue.Queue()

    def reader(child: _procchild._Child) -> None:
        while (frame := _procchild.read_frame(child.rfd)) is not None:
            frames.put(frame)
        frames.put(None)

    child = _procchild.spawn_child(reader)
    try:
        assert frames.get(timeout=60) == (pw.KIND_READY, b"")
        chunk = [(1, abs, (-1,), {}), (2, time.sleep, (0.3,), {}), (3, abs, (-3,), {})]
        child.write(pw.KIND_RUN, cloudpickle.dumps(chunk))
        got = []
        while len(got) < 4:
            kind, body = frames.get(timeout=30)
            got.append((kind, pickle.loads(body)))
        assert [(kind, body[0]) for kind, body in got] == [
            (pw.KIND_OK, 1),
            (pw.KIND_STARTED, 2),
            (pw.KIND_OK, 2),
            (pw.KIND_OK, 3),
        ]
        (_, (_, t_start)), (_, (_, t0, t1, _, _)) = got[1], got[2]
        assert t_start == t0 and t1 - t0 >= 0.29
        time.sleep(0.2)  # the watcher polls every STARTED_AFTER: nothing more about finished tasks
        assert frames.empty()
    finally:
        child.close_write()
        assert frames.get(timeout=30) is None  # the child exits at EOF
        child.reap()


def test_plain_futures_without_set_started_still_work(pool):
    assert pool.submit(time.sleep, 0.2).result(10) is None
    assert pool.submit(abs, -2).result(10) == 2


def test_frames_from_several_threads_do_not_interleave(pool):
    events: list[tuple[str, str, dict]] = []
    channel = f"test-{os.getpid()}-{id(events)}"
    pw.CHANNELS[channel] = lambda key, event, info: events.append((key, event, info))
    try:
        f = _submit(pool, Recorder(), _emit_from_threads, channel, 4, 200, 0.3)
        pid = f.result(30)
        assert len(f.calls) == 2 and f.calls[0][1] == f"pid {pid}"
        assert len(events) == 5 * 200
        for i in range(5):
            js = [info["j"] for key, _, info in events if key == f"k{i}"]
            assert js == list(range(200))
        assert all(len(info["pad"]) == 5000 for _, _, info in events)
    finally:
        pw.CHANNELS.pop(channel, None)


def test_a_task_in_a_child_is_inside_a_task_body(pool):
    assert not _nbexec_remote.in_task_body()
    assert pool.submit(_nbexec_remote.in_task_body).result(10) is True
    assert _submit(pool, Recorder(), _nbexec_remote.in_task_body).result(10) is True
