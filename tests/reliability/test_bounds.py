"""Sizes, timeouts and addresses out of reason are refused before anything starts; pools start
workers only as work needs them.

- Counts far beyond the machine (``threads -n 1000``, ``processes -n 1000``, ``dask -n 10**6``,
  ``--adapt 1 1000``, ``cluster_kwargs={"n_workers": 10**6}``) are refused with a message naming
  the machine's cores and the limit; wrong types and negative counts in cluster/client kwargs,
  ``inf``/``nan``/negative timeouts and impossible addresses name the option.
- All of this goes through the one option table, so ``executor_for``, ``%executor`` (a real
  InteractiveShell) and ``NBEXEC_EXECUTOR`` refuse the same things, and refusing starts nothing.
- An impossible address is refused at once (no connection attempt, no timeout waited).
- ``threads -n 64`` / ``processes -n 16`` running one task start one thread / one child.
"""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbexec
from nbexec import session
from nbexec.executors._limits import cores, max_processes, max_threads

pytestmark = pytest.mark.reliability

ABSURD = [
    ("threads", {"workers": 1000}),
    ("processes", {"workers": 1000}),
    ("dask", {"workers": 10**6}),
    ("dask", {"adapt": (1, 1000)}),
    ("dask", {"cluster_kwargs": {"n_workers": 10**6}}),
    ("dask", {"threads_per_worker": 10**5}),
    ("dask", {"workers": 20, "threads_per_worker": 100}),
]

BAD = [
    ("dask", {"cluster_kwargs": {"n_workers": -1}}, "n_workers"),
    ("dask", {"cluster_kwargs": {"n_workers": "x"}}, "n_workers"),
    ("dask", {"cluster_kwargs": {"threads_per_worker": 0}}, "threads_per_worker"),
    ("dask", {"cluster_kwargs": {"processes": "no"}}, "processes"),
    ("dask", {"cluster_kwargs": {"dashboard_address": 8787}}, "dashboard_address"),
    ("dask", {"client_kwargs": {"timeout": "x"}}, "timeout"),
    ("dask", {"client_kwargs": {"timeout": -1}}, "timeout"),
    ("dask", {"client_kwargs": {"timeout": float("inf")}}, "timeout"),
    ("dask", {"client_kwargs": {"set_as_default": "yes"}}, "set_as_default"),
    ("dask", {"timeout": float("inf")}, "timeout"),
    ("dask", {"timeout": float("nan")}, "timeout"),
    ("dask", {"timeout": -3}, "timeout"),
    ("dask", {"address": "tcp://256.1.1.1:8786"}, "256.1.1.1"),
    ("dask", {"address": "tcp://127.0.0.1:99999"}, "port"),
    ("dask", {"address": "tcp://127.0.0.1:port"}, "port"),
    ("dask", {"address": "http://127.0.0.1:8786"}, "scheme"),
    ("dask", {"address": "tcp://bad host:8786"}, "host"),
    ("threads", {"workers": -2}, "workers"),
]

BAD_LINES = [
    ("threads -n 1000", "cores"),
    ("processes -n 1000", "cores"),
    ("dask -n 1000000", "cores"),
    ("dask --timeout inf", "timeout"),
    ("dask --timeout nan", "timeout"),
    ("dask --timeout -1", "timeout"),
    ("""dask --cluster-kwargs '{"n_workers": -1}'""", "n_workers"),
    ("""dask --cluster-kwargs '{"n_workers": "x"}'""", "n_workers"),
    ("""dask --client-kwargs '{"timeout": "x"}'""", "timeout"),
    ("dask --address tcp://256.1.1.1:8786", "256.1.1.1"),
]


def _fingerprint() -> tuple[int, int]:
    return threading.active_count(), len(psutil.Process().children(recursive=True))


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    yield
    session.stop()


@pytest.mark.parametrize(("mode", "options"), ABSURD)
def test_absurd_counts_name_the_cores_and_the_limit(mode, options):
    before = _fingerprint()
    with pytest.raises(ValueError) as info:
        nbexec.executor_for(mode, **options)
    message = str(info.value)
    assert f"{cores()} cores" in message
    assert str(max_processes()) in message or str(max_threads()) in message
    with pytest.raises(ValueError):
        nbexec.use(mode, **options)
    assert session.current() is None
    assert _fingerprint() == before


@pytest.mark.parametrize(("mode", "options", "named"), BAD)
def test_bad_values_name_the_option_and_start_nothing(mode, options, named):
    before = _fingerprint()
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=named):
        nbexec.use(mode, **options)
    assert time.monotonic() - t0 < 5, "refused only after trying (an address must not be dialled)"
    assert session.current() is None
    assert _fingerprint() == before


@pytest.fixture(scope="module")
def shell():
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "nbexec")
    yield sh
    session.stop()


@pytest.mark.parametrize(("line", "named"), BAD_LINES)
def test_magic_refuses_with_usage_error(shell, line, named):
    nbexec.use("sync")
    before = session.current()
    for cell in (None, "y_bounds = 1"):
        with pytest.raises(UsageError, match=named):
            if cell is None:
                shell.run_line_magic("executor", line)
            else:
                shell.run_cell_magic("executor", line, cell)
    assert session.current() is before
    assert "y_bounds" not in shell.user_ns


@pytest.mark.parametrize("line", ["threads -n 1000", "dask --timeout inf"])
def test_environment_variable_refused(monkeypatch, line):
    monkeypatch.setenv(session.ENV_VAR, line)
    with pytest.raises(ValueError):
        session.override()


def test_one_task_starts_one_thread():
    ex = nbexec.executor_for("threads", workers=64)
    before = set(threading.enumerate())  # other tests' threads may come and go meanwhile
    with ex.start():
        assert ex.submit(abs, -1).result() == 1
        started = [t for t in set(threading.enumerate()) - before if "nbexec" in t.name]
    assert len(started) == 1, f"{len(started)} threads started for one task: {started}"


def test_one_task_starts_one_child_and_little_memory():
    me = psutil.Process()
    ex = nbexec.executor_for("processes", workers=max_processes())
    before = set(me.children(recursive=True))  # e.g. servers other tests keep running
    with ex.start():
        assert ex.submit(abs, -2).result() == 2
        children = [c for c in me.children(recursive=True) if c not in before]
        rss = sum(c.memory_info().rss for c in children)
    print(
        f"\nprocesses -n {max_processes()}, one task: {len(children)} child, {rss / 2**20:.0f} MB"
    )
    assert len(children) == 1


def test_children_grow_with_the_work_and_no_further():
    ex = nbexec.executor_for("processes", workers=3)
    me = psutil.Process()
    before = set(me.children(recursive=True))
    with ex.start():
        futures = [ex.submit(time.sleep, 0.3) for _ in range(9)]
        [f.result() for f in futures]
        n = len([c for c in me.children(recursive=True) if c not in before])
    assert n == 3


def test_thread_limit_rule_is_documented():
    assert max_processes() == max(32, 4 * (len(os.sched_getaffinity(0)) or 1))
    assert max_threads() == max(256, 32 * (len(os.sched_getaffinity(0)) or 1))
