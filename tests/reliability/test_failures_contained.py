"""Failures stay the size of what failed: huge error messages are cut in the table and in
``TaskFailed``'s message (the whole exception stays on the future); a result that cannot be
unpickled on the client fails only its task, and its sibling's result still arrives; no
distributed CRITICAL/ERROR lines reach stderr."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import cloudpickle
import pytest

import nbexec
from nbexec import session
from nbexec.core._errtext import MAX_ERROR_TEXT

pytestmark = pytest.mark.reliability
cloudpickle.register_pickle_by_value(sys.modules[__name__])

HUGE = 5_000_000


def huge():
    raise ValueError("x" * HUGE)


@pytest.mark.parametrize("mode", ["local", "sync", "threads", "processes"])
def test_huge_messages_are_cut_but_kept_on_the_future(mode, monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    nbexec.use(mode)
    try:
        with pytest.raises(nbexec.TaskFailed) as info:
            with nbexec.run() as run:
                f = nbexec.submit(huge)
        assert len(str(info.value)) < 2 * MAX_ERROR_TEXT
        assert "characters cut" in str(info.value)
        failure = run.snapshot().failures[0]
        assert len(failure.error or "") < 2 * MAX_ERROR_TEXT
        assert len(failure.traceback or "") < 3 * MAX_ERROR_TEXT
        assert len(str(info.value.error)) >= HUGE  # the whole exception is kept
        assert len(str(f.exception())) >= HUGE
    finally:
        session.stop()


_UNPICKLABLE = """
import sys, time
import nbexec

class Bad:
    def __reduce__(self):
        return (Bad._boom, ())
    @staticmethod
    def _boom():
        raise RuntimeError("this result cannot be unpickled here")

def bad():
    import os
    if os.environ.get("IN_WORKER") is None:
        pass
    return Bad()

def ten():
    time.sleep(0.5)
    return 10

if __name__ == "__main__":
    nbexec.use("dask", workers=2, threads_per_worker=1)
    try:
        with nbexec.run() as run:
            x = nbexec.submit(bad)
            y = nbexec.submit(ten)
    except nbexec.TaskFailed as exc:
        print("FAILED", type(exc.error).__name__, flush=True)
    try:
        print("X", x.result(), flush=True)
    except BaseException as exc:
        print("X-ERROR", type(exc).__name__, flush=True)
    print("Y", y.result(), flush=True)
    print("STATES", sorted(f.state for f in run.futures), flush=True)
    time.sleep(1)
    nbexec.stop()
    print("DONE", flush=True)
"""


def test_unpicklable_result_on_dask_fails_only_its_task(tmp_path):
    path = tmp_path / "unpicklable.py"
    path.write_text(textwrap.dedent(_UNPICKLABLE))
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert "DONE" in out.stdout, out.stdout + out.stderr
    assert "Y 10" in out.stdout
    assert "X-ERROR" in out.stdout
    bad = [
        line
        for line in out.stderr.splitlines()
        if " - CRITICAL - " in line or " - ERROR - " in line
    ]
    assert not bad, out.stderr
