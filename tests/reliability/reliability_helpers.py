"""Helpers for the reliability suite: child scripts, process trees, listening sockets."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


class Script:
    """A Python script run in its own process group, printing ``TAG value`` lines we can wait for."""

    def __init__(self, code: str, tmp: Path, env: dict[str, str] | None = None) -> None:
        path = tmp / f"script-{time.monotonic_ns()}.py"
        path.write_text(textwrap.dedent(code))
        self.out_path = tmp / (path.stem + ".out")
        self.err_path = tmp / (path.stem + ".err")
        full_env = {k: v for k, v in os.environ.items() if k != "NBEXEC_EXECUTOR"}
        full_env.update(env or {})
        full_env["PYTHONUNBUFFERED"] = "1"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(path)],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=tmp,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[str]:
        return self.out_path.read_text().splitlines()

    def stderr(self) -> str:
        return self.err_path.read_text()

    def value(self, tag: str) -> str | None:
        """The text after ``tag`` on the first line starting with it, or None."""
        for line in self.lines():
            if line.startswith(tag + " ") or line == tag:
                return line[len(tag) :].strip()
        return None

    def wait_line(self, tag: str, timeout: float) -> str:
        def seen() -> str | None:
            value = self.value(tag)
            if value is None and self.proc.poll() is not None:
                raise AssertionError(
                    f"script exited ({self.proc.returncode}) before printing {tag!r}\n"
                    f"stdout:\n{self.out_path.read_text()}\nstderr:\n{self.stderr()[-4000:]}"
                )
            return value if value is not None else None

        deadline = time.monotonic() + timeout
        while True:
            value = seen()
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {tag!r} line within {timeout} s\nstdout:\n{self.out_path.read_text()}\n"
                    f"stderr:\n{self.stderr()[-4000:]}"
                )
            time.sleep(0.02)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"script did not exit within {timeout} s\nstdout:\n{self.out_path.read_text()}\n"
                f"stderr:\n{self.stderr()[-4000:]}"
            ) from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(10)


@contextlib.contextmanager
def script(code: str, tmp: Path, env: dict[str, str] | None = None) -> Iterator[Script]:
    s = Script(code, tmp, env)
    try:
        yield s
    finally:
        s.stop()


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (zombies count as gone)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """``(pid, ip, port)`` of every inet socket in LISTEN state owned by one of ``pids``."""
    wanted = set(pids)
    out = []
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in wanted:
            out.append((conn.pid, conn.laddr.ip, conn.laddr.port))
    return out


def kill_tree(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
