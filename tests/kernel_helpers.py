"""Start a real IPython kernel (this venv's python) and run cells in it, collecting iopub messages.

Shared by the magics, reliability and notebook tests::

    with running_kernel(env={"NBEXEC_EXECUTOR": "local"}) as kernel:
        cell = kernel.execute("%load_ext nbexec")
        assert cell.ok, cell.error_text
        msg_id = kernel.submit("import time; time.sleep(10)")
        kernel.interrupt()                       # SIGINT to the kernel's process group
        cell = kernel.collect(msg_id, timeout=5)
        assert cell.ename == "KeyboardInterrupt"

``Cell`` holds the execute_reply, every iopub message of the cell (in order, with arrival times) and
convenience views: ``streams`` (name -> text), ``displays`` (display_data/execute_result bundles).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

__all__ = ["Cell", "Kernel", "running_kernel"]

_SPEC_NAME = "nbexec-test-python"


@dataclass
class Cell:
    """What one execute request produced."""

    msg_id: str
    reply: dict | None = None
    messages: list[dict] = field(default_factory=list)  # iopub messages, each with "_t" (monotonic)
    reply_time: float | None = None

    @property
    def ok(self) -> bool:
        return self.reply is not None and self.reply["content"]["status"] == "ok"

    @property
    def ename(self) -> str | None:
        return None if self.reply is None else self.reply["content"].get("ename")

    @property
    def error_text(self) -> str:
        for msg in self.messages:
            if msg["msg_type"] == "error":
                return "\n".join(msg["content"]["traceback"])
        return ""

    def of_type(self, *types: str) -> list[dict]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def streams(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for msg in self.of_type("stream"):
            name = msg["content"]["name"]
            out[name] = out.get(name, "") + msg["content"]["text"]
        return out

    @property
    def displays(self) -> list[dict]:
        """The data bundles of display_data and execute_result messages, in order."""
        return [m["content"]["data"] for m in self.of_type("display_data", "execute_result")]

    def first_time(self, *types: str) -> float | None:
        """Arrival time of the first iopub message of these types (monotonic clock)."""
        for msg in self.of_type(*types):
            return msg["_t"]
        return None


class Kernel:
    """A started kernel with a blocking client; use ``running_kernel()`` to get one."""

    def __init__(self, km: KernelManager, startup_timeout: float = 60) -> None:
        self.km = km
        self.kc = km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=startup_timeout)
        self._drain_iopub()
        self.others: list[dict] = []  # iopub messages ``collect`` met whose parent was another cell

    @property
    def pid(self) -> int:
        return self.km.provisioner.process.pid

    def _drain_iopub(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.kc.get_iopub_msg(timeout=0.2)

    def submit(self, code: str, **kwargs: Any) -> str:
        """Send an execute request; returns its msg_id (collect it with ``collect``)."""
        return self.kc.execute(code, **kwargs)

    def collect(self, msg_id: str, timeout: float = 60) -> Cell:
        """Wait for the cell's execute_reply and its iopub messages up to the idle status."""
        cell = Cell(msg_id)
        deadline = time.monotonic() + timeout
        idle = False
        while not (idle and cell.reply is not None):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"cell {msg_id} did not finish within {timeout} s; got so far: "
                    f"{[m['msg_type'] for m in cell.messages]}"
                )
            if cell.reply is None:
                with contextlib.suppress(queue.Empty):
                    reply = self.kc.get_shell_msg(timeout=min(left, 0.05))
                    if reply["parent_header"].get("msg_id") == msg_id:
                        cell.reply, cell.reply_time = reply, time.monotonic()
            if not idle:
                with contextlib.suppress(queue.Empty):
                    msg = self.kc.get_iopub_msg(timeout=min(left, 0.05))
                    if msg["parent_header"].get("msg_id") == msg_id:
                        msg["_t"] = time.monotonic()
                        if msg["msg_type"] == "status":
                            idle = msg["content"]["execution_state"] == "idle"
                        else:
                            cell.messages.append(msg)
                    else:
                        msg["_t"] = time.monotonic()
                        self.others.append(msg)
        return cell

    def gather(self, seconds: float) -> list[dict]:
        """Keep reading iopub for ``seconds``; returns (and keeps in ``others``) what came."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                msg = self.kc.get_iopub_msg(timeout=min(left, 0.05))
                msg["_t"] = time.monotonic()
                got.append(msg)
        self.others.extend(got)
        return got

    def execute(self, code: str, timeout: float = 60, **kwargs: Any) -> Cell:
        return self.collect(self.submit(code, **kwargs), timeout)

    def interrupt(self) -> None:
        """Jupyter's interrupt: SIGINT to the kernel's whole process group."""
        self.km.interrupt_kernel()

    def signal_kernel_only(self, signum: int = signal.SIGINT) -> None:
        """``kill -SIG`` of the kernel's own PID (its children are not signalled)."""
        os.kill(self.pid, signum)

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.kc.stop_channels()
        with contextlib.suppress(Exception):
            self.km.shutdown_kernel(now=False, restart=False)
        if self.km.has_kernel:
            with contextlib.suppress(Exception):
                self.km.shutdown_kernel(now=True)


def _write_spec(root: Path) -> KernelSpecManager:
    spec_dir = root / _SPEC_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nbexec tests",
        "language": "python",
        "interrupt_mode": "signal",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root)], ensure_native_kernel=False)


@contextlib.contextmanager
def running_kernel(
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
    unset: tuple[str, ...] = ("NBEXEC_EXECUTOR",),
    startup_timeout: float = 60,
) -> Iterator[Kernel]:
    """A kernel running this interpreter, with ``os.environ`` minus ``unset`` plus ``env``.

    The kernel is shut down (and killed if it does not stop) when the block exits.
    """
    with tempfile.TemporaryDirectory(prefix="nbexec-kernel-") as tmp:
        full_env = {k: v for k, v in os.environ.items() if k not in unset}
        full_env.update(env or {})
        full_env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        km = KernelManager(
            kernel_name=_SPEC_NAME,
            kernel_spec_manager=_write_spec(Path(tmp)),
            transport="ipc",  # local sockets: no TCP ports, no "running over TCP" warning
            ip=str(Path(tmp, "kernel")),
        )
        km.start_kernel(env=full_env, cwd=str(cwd or tmp))
        kernel = None
        try:
            kernel = Kernel(km, startup_timeout)
            yield kernel
        finally:
            if kernel is not None:
                kernel.shutdown()
            elif km.has_kernel:
                km.shutdown_kernel(now=True)
