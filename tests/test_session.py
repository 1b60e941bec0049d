"""The session executor: use/current/stop, reuse, the environment override (unreachable schedulers:
tests/reliability/test_unreachable_scheduler.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nbexec
from nbexec import session
from nbexec.executors import LocalExecutor

pytestmark = pytest.mark.usefixtures("clean_session")


def test_use_current_stop():
    assert nbexec.current() is None
    first = nbexec.use("threads", workers=2)
    assert nbexec.current() is first and first.started
    second = nbexec.use("local")
    assert nbexec.current() is second
    assert not first.started, "switching stops the previous executor"
    nbexec.stop()
    assert nbexec.current() is None


def test_ensure_reuses_a_matching_executor_and_left_out_options_mean_any():
    first = session.ensure("threads", workers=2)
    assert session.ensure("threads") is first
    assert session.ensure("threads", workers=2) is first
    assert session.ensure() is first
    other = session.ensure("threads", workers=1)
    assert other is not first and not first.started


def test_ensure_without_a_mode_starts_local():
    assert isinstance(session.ensure(), LocalExecutor)


def test_run_with_a_mode_uses_the_session_executor():
    with nbexec.run("threads", workers=2) as run:
        nbexec.submit(abs, -1)
    assert run.executor is nbexec.current()


def test_environment_override_replaces_modes_but_not_executor_objects(monkeypatch):
    monkeypatch.setenv(session.ENV_VAR, "threads -n 2")
    with nbexec.run("local") as run:
        assert nbexec.submit(abs, -3).result() == 3
    assert run.executor.scheduler == "threads"
    assert session.status().override == "threads -n 2"
    assert "override: NBEXEC_EXECUTOR='threads -n 2'" in session.status().text()
    explicit = LocalExecutor()
    with nbexec.run(explicit) as run:
        pass
    assert run.executor is explicit


def test_bad_override_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(session.ENV_VAR, "gpu -n 2")
    with pytest.raises(ValueError, match="NBEXEC_EXECUTOR='gpu -n 2' is not a valid executor line"):
        nbexec.use("local")


def test_import_nbexec_is_light():
    code = (
        "import sys, nbexec\n"
        "heavy = [m for m in ('distributed', 'IPython', 'ipywidgets', 'bokeh', 'dask') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_from_the_design_exist():
    for name in ["Executor", "LocalExecutor", "LocalDaskExecutor", "DaskExecutor", "executor_for", "task",
                 "submit", "map", "run", "TaskFailed", "use", "current", "stop", "load_ipython_extension"]:  # fmt: skip
        assert hasattr(nbexec, name), name
    from nbexec import executors

    assert executors.LocalDaskExecutor is nbexec.LocalDaskExecutor
    assert executors.DaskExecutor is nbexec.DaskExecutor
