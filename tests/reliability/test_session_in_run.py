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


def test_a_background_cell_still_going_keeps_its_executor():
    """Switching or stopping while a background run is going would cancel its tasks: refused."""
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbexec")
    shell.run_cell(
        "import nbexec, time\n@nbexec.task\ndef nap(s):\n    time.sleep(s)\n    return s"
    )
    assert shell.run_cell("%%executor threads -n 1 --background\nz = nap(1.5)").success
    executor = session.current()
    for line in ("local", "stop"):
        result = shell.run_cell(f"%executor {line}")
        assert isinstance(result.error_in_exec, RuntimeError), line
        assert "still going" in str(result.error_in_exec)
        assert "%executor wait" in str(result.error_in_exec)
    assert session.current() is executor and executor.started
    assert shell.run_cell("%executor wait").success
    assert shell.user_ns["z"] == 1.5
    assert shell.run_cell("%executor local").success  # the run ended: allowed
    assert session.current_mode()[0] == "local"


def test_another_threads_run_keeps_the_executor():
    import threading

    nbexec.use("threads", workers=1)
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        with nbexec.run():
            nbexec.submit(release.wait, 30)
            started.set()

    thread = threading.Thread(target=hold)
    thread.start()
    assert started.wait(10)
    with pytest.raises(RuntimeError, match="still going"):
        nbexec.use("sync")
    release.set()
    thread.join(10)
    nbexec.use("sync")
    assert session.current_mode()[0] == "sync"
