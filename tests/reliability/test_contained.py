"""A BaseException raised by a task's own code fails only that task, the same way in every mode.

``KeyboardInterrupt`` (raised by the task, not a kernel interrupt), ``SystemExit`` and
``GeneratorExit``: the run raises ``TaskFailed`` whose cause is a ``TaskExit`` carrying the
original (``.exc``); the sibling task's result arrives; nothing is left "running"; no worker is
killed (the same pool children / Dask worker processes serve the next run).
"""

from __future__ import annotations

import sys
import traceback

import cloudpickle
import psutil
import pytest

import nbexec
from nbexec import session
from nbexec.runtime._taskcall import contain

pytestmark = pytest.mark.reliability
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def own_kbi():
    raise KeyboardInterrupt("mine")


def own_exit():
    sys.exit(3)


def own_genexit():
    raise GeneratorExit


def ten():
    return 10


CASES = [(own_kbi, KeyboardInterrupt), (own_exit, SystemExit), (own_genexit, GeneratorExit)]
MODES = [
    ("local", {}),
    ("sync", {}),
    ("threads", {"workers": 2}),
    ("processes", {"workers": 2}),
    ("dask", {"workers": 2, "threads_per_worker": 1}),
]


def _worker_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.mark.parametrize(("mode", "options"), MODES, ids=[m for m, _ in MODES])
def test_base_exceptions_fail_only_their_task(mode, options, monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    nbexec.use(mode, **options)
    try:
        pids = None
        for fn, kind in CASES:
            with pytest.raises(nbexec.TaskFailed) as info:
                with nbexec.run() as run:
                    bad = nbexec.submit(fn)
                    good = nbexec.submit(ten)
                    run.wait()
            assert good.result() == 10
            assert bad.state == "failed" and good.state == "success"
            assert not [f for f in run.futures if f.state in ("running", "pending")]
            cause = info.value.__cause__
            assert type(cause).__name__ == "TaskExit", cause
            assert isinstance(cause.exc, kind)
            # The original is the cause, as in every mode, with where it was raised.
            assert type(cause.__cause__) is kind, repr(cause.__cause__)
            shown = "".join(traceback.format_exception(cause))
            assert fn.__name__ in shown, shown
            assert kind.__name__ in str(info.value)
            now = _worker_pids()
            if pids is not None and mode in ("processes", "dask"):
                assert pids <= now, "a worker process died"
            pids = now
        with nbexec.run() as run:
            assert [f.result() for f in nbexec.map(abs, [-1, -2])] == [1, 2]
    finally:
        session.stop()


def test_a_kernel_interrupt_is_not_contained():
    """SIGINT landing in the main thread is an interrupt, not the task's failure."""
    import os
    import signal
    import threading
    import time

    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        time.sleep(5)
    except KeyboardInterrupt as exc:
        assert contain(exc) is exc
    else:
        pytest.fail("no interrupt")
    try:
        own_kbi()
    except KeyboardInterrupt as exc:
        assert type(contain(exc)).__name__ == "TaskExit"
