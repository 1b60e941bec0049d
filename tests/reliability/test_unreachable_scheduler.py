"""Schedulers that cannot be reached fail within the timeout, name the address, and change nothing.

Addresses: a closed port (connection refused), a port that accepts connections but never answers
(a listening socket nobody accepts on: the kernel completes the handshake), and a server that
answers in another protocol (HTTP). Timings start after ``distributed`` is imported: its import
(1-3 s on a cold kernel) is not part of reaching a scheduler.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

import nbexec
from nbexec import session

pytestmark = pytest.mark.reliability

TIMEOUT = 2.0
MARGIN = 1.5


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def silent_port() -> Iterator[str]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)  # never accept()ed: connections complete, nothing ever answers
    try:
        yield f"tcp://127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


@pytest.fixture(scope="module")
def http_port() -> Iterator[str]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    stop = threading.Event()

    s.settimeout(0.1)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = s.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 20)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{s.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        s.close()


@pytest.fixture(params=["closed-port", "silent-port", "http-port"])
def address(request) -> str:
    import distributed  # noqa: F401 - import time is not connection time

    if request.param == "closed-port":
        return _closed_port()
    return request.getfixturevalue(request.param.replace("-", "_"))


def square(x):
    return x * x


@pytest.fixture
def previous() -> Iterator[nbexec.Executor]:
    executor = nbexec.use("threads", workers=2)
    try:
        yield executor
    finally:
        nbexec.stop()


def _start(executor: nbexec.Executor) -> None:
    with executor.start():
        pass


@pytest.mark.parametrize("how", ["use", "executor.start"])
def test_fails_in_time_names_the_address_and_changes_nothing(address, previous, how):
    mode_before = session.current_mode()
    threads = threading.active_count()
    executor = nbexec.executor_for("dask", address=address, timeout=TIMEOUT)
    t0 = time.monotonic()
    with pytest.raises((OSError, TimeoutError)) as info:
        if how == "use":
            nbexec.use("dask", address=address, timeout=TIMEOUT)
        else:
            _start(executor)
    took = time.monotonic() - t0
    assert took < TIMEOUT + MARGIN, f"failed after {took:.2f} s"
    assert address in str(info.value)
    assert executor.client is None and not executor.started
    deadline = time.monotonic() + 5
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads, "the failed attempt left threads behind"
    assert nbexec.current() is previous and previous.started
    assert session.current_mode() == mode_before
    with nbexec.run() as run:
        futures = nbexec.map(square, range(5))
    assert run.executor is previous
    assert [f.result() for f in futures] == [0, 1, 4, 9, 16]
    print(f"\n{how}(dask, {address}) failed after {took:.2f} s: {info.value}")


def test_default_timeout_is_bounded(silent_port):
    """Without --timeout the default (10 s) bounds the wait too; here checked via client_kwargs."""
    executor = nbexec.executor_for("dask", address=silent_port, client_kwargs={"timeout": 1})
    t0 = time.monotonic()
    with pytest.raises((OSError, TimeoutError)):
        with executor.start():
            pass
    assert time.monotonic() - t0 < 1 + MARGIN
