"""One ``TaskInterrupted`` for every interrupt nbexec raises inside a running task.

The same class is raised in pool threads (threads mode) and in Dask worker threads (a cluster
nbexec created). Task code that catches ``Exception`` does not swallow it, a task with retries
left is not run again, and a Dask worker is not closed by it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import nbexec
from nbexec.executors.local_dask import LocalDaskExecutor
from nbexec.pools import _threadpool
from nbexec.runtime import _taskcall


def _wait_for(path: Path, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return False


def stubborn(folder: str, seconds: float = 8.0) -> str:
    """Counts its attempts, then sleeps in steps and swallows every ``Exception`` meanwhile."""
    attempt = len([n for n in os.listdir(folder) if n.startswith("attempt-")]) + 1
    open(os.path.join(folder, f"attempt-{attempt}"), "w").close()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.02)
        except Exception:  # noqa: BLE001 - what careless task code does
            open(os.path.join(folder, "swallowed"), "w").close()
    open(os.path.join(folder, "effect"), "w").close()
    return "ran to the end"


def _flaky_then_stubborn(folder: str) -> str:
    if not os.path.exists(os.path.join(folder, "failed-once")):
        open(os.path.join(folder, "failed-once"), "w").close()
        raise ValueError("first attempt fails, so retries are in play")
    return stubborn(folder)


def test_one_class_neither_an_exception_nor_a_keyboard_interrupt():
    import _nbexec_remote

    cls = _taskcall.TaskInterrupted
    assert cls is _threadpool.TaskInterrupted is _nbexec_remote.TaskInterrupted
    # Exception: task code would swallow it; KeyboardInterrupt: distributed closes the worker.
    assert issubclass(cls, BaseException)
    assert not issubclass(cls, (Exception, KeyboardInterrupt))
    assert _nbexec_remote.contain(cls()).__class__ is cls  # stops the work, never a TaskExit


def _assert_stopped(folder: Path) -> None:
    time.sleep(1.0)  # the task would write "swallowed" within 0.02 s of swallowing it
    assert not (folder / "swallowed").exists(), "task code swallowed the interrupt"
    assert not (folder / "effect").exists()
    assert sorted(p.name for p in folder.glob("attempt-*")) == ["attempt-1"]


@pytest.mark.parametrize("retries", [0, 2])
def test_threads_interrupt_is_not_swallowed_nor_retried(tmp_path, retries):
    ex = LocalDaskExecutor("threads", num_workers=2)
    with nbexec.run(ex) as run:
        fn = nbexec.task(retries=retries)(stubborn)
        f = nbexec.submit(fn, str(tmp_path))
        assert _wait_for(tmp_path / "attempt-1")
        run.cancel([f])
        _assert_stopped(tmp_path)
        assert nbexec.submit(pow, 2, 5).result() == 32  # the pool goes on


def test_dask_interrupt_is_not_swallowed_nor_retried_and_the_worker_survives(
    local_cluster_executor, tmp_path
):
    ex = local_cluster_executor
    workers = set(ex.client.scheduler_info()["workers"])
    with nbexec.run(ex) as run:
        fn = nbexec.task(retries=2)(_flaky_then_stubborn)
        f = nbexec.submit(fn, str(tmp_path))
        assert _wait_for(tmp_path / "attempt-1")
        run.cancel([f])
        _assert_stopped(tmp_path)
        assert nbexec.submit(pow, 2, 5).result() == 32
    assert set(ex.client.scheduler_info()["workers"]) == workers
