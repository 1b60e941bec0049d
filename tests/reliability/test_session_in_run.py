"""Changing or stopping the session executor inside an open run is refused, with a message saying
so; the run's futures stay valid and the session executor is unchanged afterwards."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbexec
from nbexec import session

pytestmark = pytest.mark.reliability


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    yield
    session.stop()


@pytest.mark.parametrize("mode", ["local", "threads", "processes"])
def test_use_and_stop_inside_a_run_are_refused(mode):
    nbexec.use(mode)
    executor = session.current()
    with nbexec.run() as run:
        before = nbexec.submit(abs, -1)
        with pytest.raises(RuntimeError, match="inside an open run"):
            nbexec.use("sync")
        with pytest.raises(
            RuntimeError, match="cannot stop the session executor inside an open run"
        ):
            nbexec.stop()
        after = nbexec.submit(abs, -2)
        run.wait()
    assert session.current() is executor and executor.started
    assert (before.result(), after.result()) == (1, 2)
    nbexec.use("sync")  # after the run: allowed
    assert session.current_mode()[0] == "sync"


def test_inside_an_executor_cell():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbexec")
    result = shell.run_cell("%%executor threads -n 2\nimport nbexec\nx = abs(-3)\nnbexec.stop()")
    assert isinstance(result.error_in_exec, RuntimeError)
    assert "inside an open run" in str(result.error_in_exec)
    assert session.current_mode()[0] == "threads" and session.current().started
    shell.run_cell("%%executor threads -n 2\ny = abs(-4)")
    assert shell.user_ns["y"] == 4
