"""A task raising an exception that cannot be pickled fails alone, with a readable message.

The error must cross a process boundary (pool child -> kernel, Dask worker -> client); when it
cannot, the task still fails (naming the error and where it came from) and its siblings' results
arrive, in processes mode, on a Dask cluster nbexec created and on an external one (the CLI).
"""

from __future__ import annotations

import sys
import threading

import cloudpickle
import pytest

import nbexec
from nbexec import session

pytestmark = pytest.mark.reliability
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the CLI workers cannot import it


class LockedError(Exception):
    """An error holding a lock: its instances cannot be pickled."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.lock = threading.Lock()


class TwoArgError(Exception):
    """Pickles, but cannot be rebuilt: ``__init__`` takes two arguments, ``args`` holds one."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} (code {code})")


def bad():
    raise LockedError("the disk is on fire")


def bad_two():
    raise TwoArgError("the disk is on fire", 7)


def good(i):
    return i * 10


def check(executor_or_mode, raiser, **options):
    nbexec.use(executor_or_mode, **options)
    try:
        with pytest.raises(nbexec.TaskFailed) as info:
            with nbexec.run() as run:
                failing = nbexec.submit(raiser)
                fine = [nbexec.submit(good, i) for i in range(4)]
                run.wait()
        assert [f.result() for f in fine] == [0, 10, 20, 30]
        assert failing.state == "failed"
        assert [f.state for f in fine] == ["success"] * 4
        text = str(info.value) + "".join(
            str(e) for e in (info.value.__cause__, getattr(info.value.__cause__, "__cause__", None))
        )
        name = "LockedError" if raiser is bad else "TwoArgError"
        assert name in text and "the disk is on fire" in text, text
        with nbexec.run():
            assert [f.result() for f in nbexec.map(good, [1, 2])] == [10, 20]
    finally:
        session.stop()


@pytest.mark.parametrize("raiser", [bad, bad_two])
@pytest.mark.parametrize(
    ("mode", "options"),
    [("processes", {"workers": 2}), ("dask", {"workers": 2, "threads_per_worker": 1})],
)
def test_unpicklable_error_fails_only_its_task(mode, options, raiser, monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    check(mode, raiser, **options)


@pytest.mark.parametrize("raiser", [bad, bad_two])
def test_unpicklable_error_on_external_cluster(dask_cli_cluster, raiser, monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    check(nbexec.executor_for("dask", address=dask_cli_cluster.address, timeout=10), raiser)
