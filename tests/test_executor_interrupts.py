"""Real SIGINTs and SIGKILLs against a script using LocalDaskExecutor, per scheduler."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.reliability

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from nbexec.executors import LocalDaskExecutor

    scheduler, out = sys.argv[1], sys.argv[2]

    def work(i):
        open(os.path.join(out, f"started-{i}"), "w").close()
        time.sleep(3)
        open(os.path.join(out, f"effect-{i}"), "w").close()  # must never happen
        return i

    ex = LocalDaskExecutor(scheduler, num_workers=2)
    with ex.start():
        if scheduler == "processes":
            print("PIDS", *ex._pool.pids, flush=True)
        futures = [ex.submit(work, i) for i in range(3)]
        print("SUBMITTED", flush=True)
        try:
            ex.wait(futures)
        except KeyboardInterrupt:
            print("KEYBOARDINTERRUPT", flush=True)
        print("AFTER", ex.wait(ex.submit(pow, 2, 5)), flush=True)
    """
)


class Script:
    """The script in a subprocess of its own session, with its stdout lines timestamped."""

    def __init__(self, tmp_path: Path, scheduler: str) -> None:
        self.out = tmp_path / "out"
        self.out.mkdir()
        path = tmp_path / "script.py"
        path.write_text(SCRIPT)
        self.proc = subprocess.Popen(
            [sys.executable, str(path), scheduler, str(self.out)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.strip()))

    def wait_line(self, prefix: str, timeout: float = 30) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in self.lines:
                if line.startswith(prefix):
                    return t, line
            time.sleep(0.01)
        raise AssertionError(f"no {prefix!r} line within {timeout} s; got {self.lines}")

    def wait_file(self, name: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not (self.out / name).exists():
            assert time.monotonic() < deadline, f"{name} never appeared"
            time.sleep(0.01)

    def files(self, prefix: str) -> list[str]:
        return sorted(p.name for p in self.out.iterdir() if p.name.startswith(prefix))

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.mark.parametrize("to_group", [False, True], ids=["kill-pid", "killpg"])
@pytest.mark.parametrize("scheduler", ["threads", "sync", "processes"])
def test_sigint_stops_the_run_and_no_task_has_effects(tmp_path, scheduler, to_group):
    script = Script(tmp_path, scheduler)
    try:
        pids = []
        if scheduler == "processes":
            pids = [int(p) for p in script.wait_line("PIDS")[1].split()[1:]]
        script.wait_line("SUBMITTED")
        script.wait_file("started-0")
        time.sleep(0.3)
        started = time.monotonic()
        if to_group:
            os.killpg(script.proc.pid, signal.SIGINT)
        else:
            os.kill(script.proc.pid, signal.SIGINT)
        t, _ = script.wait_line("KEYBOARDINTERRUPT", timeout=10)
        assert t - started < 2.0, f"KeyboardInterrupt after {t - started:.2f} s"
        _, after = script.wait_line("AFTER", timeout=10)
        assert after == "AFTER 32"  # the executor still runs new work
        time.sleep(max(0.0, started + 3.8 - time.monotonic()))  # past every task's sleep
        assert script.files("effect-") == []
        assert script.proc.wait(10) == 0
        for pid in pids:  # interrupted children were killed (and replacements stopped on exit)
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    finally:
        script.close()


@pytest.fixture
def held_pool(tmp_path):
    path = tmp_path / "hold.py"
    path.write_text(
        textwrap.dedent(
            """
            import time
            from nbexec.executors import LocalDaskExecutor
            ex = LocalDaskExecutor("processes", num_workers=2)
            with ex.start():
                fs = [ex.submit(time.sleep, 60) for _ in range(2)]  # children start as work needs them
                print(*ex._pool.pids, flush=True)
                fs[0].result()
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(path)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_pool_children_die_with_a_sigkilled_parent(held_pool):
    pids = [int(p) for p in held_pool.stdout.readline().split()]
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    os.kill(held_pool.pid, signal.SIGKILL)  # the parent alone, not its group
    held_pool.wait(5)
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        time.sleep(0.05)
    assert alive == [], f"pool children outlived their SIGKILLed parent: {alive}"
