"""The session executor: use/current/stop, reuse, the environment override, unreachable schedulers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

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


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _SilentServer:
    """Accepts TCP connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_unreachable_scheduler_fails_in_bounded_time_and_keeps_the_session(kind):
    previous = nbexec.use("threads", workers=1)
    server = _SilentServer() if kind == "silent" else None
    port = server.port if server else _closed_port()
    address = f"tcp://127.0.0.1:{port}"
    t0 = time.monotonic()
    try:
        with pytest.raises((OSError, TimeoutError)) as info:
            nbexec.use("dask", address=address, timeout=2)
    finally:
        if server:
            server.close()
    assert time.monotonic() - t0 < 2 + 5
    assert address in str(info.value) or f"127.0.0.1:{port}" in str(info.value)
    assert nbexec.current() is previous and previous.started
    with nbexec.run() as run:
        assert nbexec.submit(abs, -1).result() == 1
    assert run.executor is previous


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
