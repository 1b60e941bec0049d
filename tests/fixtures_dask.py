"""Real Dask schedulers and workers started from the command line, for tests (pytest plugin).

The scheduler and workers run with a PYTHONPATH whose first entry holds a fake ``nbexec`` package
and a fake ``_nbexec_remote`` package that raise ImportError, so anything nbexec ships to them must
travel by value (or be installed by ``DaskExecutor.start()``; the scheduler unpickles graphs too).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DASK = str(Path(sys.executable).with_name("dask"))


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL it if still alive."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # also any child left in the group
    except ProcessLookupError:
        pass
    proc.wait(timeout)


class DaskCLICluster:
    """A ``dask scheduler`` and ``dask worker`` processes, each in its own process group."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scheduler_file = str(root / "scheduler.json")
        fake = root / "fakepath" / "nbexec"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text(
            'raise ImportError("nbexec is not installed on workers")\n'
        )
        (fake.parent / "_nbexec_remote").mkdir()
        (fake.parent / "_nbexec_remote" / "__init__.py").write_text(
            'raise ImportError("nbexec is not installed on workers")\n'
        )
        self.worker_env = dict(os.environ, PYTHONPATH=str(root / "fakepath"))
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    def _popen(self, args: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        try:
            return subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=self.root,
            )
        finally:
            log.close()

    def start_scheduler(self) -> None:
        self.scheduler = self._popen(
            [
                DASK,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                self.scheduler_file,
            ],
            "scheduler",
            env=self.worker_env,
        )
        self.wait_for_address()

    def wait_for_address(self, timeout: float = 30) -> None:
        """Read the scheduler's address from its scheduler file once it appears."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.address = json.loads(Path(self.scheduler_file).read_text())["address"]
                return
            except (OSError, ValueError, KeyError):
                if self.scheduler.poll() is not None:
                    raise RuntimeError("dask scheduler exited") from None
                time.sleep(0.1)
        raise RuntimeError(f"dask scheduler did not write its file within {timeout} s")

    def start_worker(self, *extra: str, nthreads: int = 2, wait: bool = True) -> subprocess.Popen:
        """Start one more ``dask worker`` (with nanny); wait until the scheduler lists it."""
        before = self.n_workers() if wait else 0
        name = f"worker{len(self.workers)}"
        proc = self._popen(
            [
                DASK,
                "worker",
                "--scheduler-file",
                self.scheduler_file,
                "--host",
                "127.0.0.1",
                "--nworkers",
                "1",
                "--nthreads",
                str(nthreads),
                "--no-dashboard",
                "--memory-limit",
                "1GiB",
                "--local-directory",
                str(self.root / name),
                "--death-timeout",
                "30",
                "--name",
                name,
                *extra,
            ],
            name,
            env=self.worker_env,
        )
        self.workers.append(proc)
        if wait:
            self.wait_for_workers(before + 1)
        return proc

    def kill_worker(self, proc: subprocess.Popen) -> None:
        """Stop a worker (its whole process group) and forget it."""
        _stop(proc)
        self.workers.remove(proc)

    def client(self):  # -> distributed.Client
        import distributed

        return distributed.Client(self.address, timeout=10, set_as_default=False)

    def n_workers(self) -> int:
        with self.client() as c:
            return len(c.scheduler_info(n_workers=-1)["workers"])

    def wait_for_workers(self, n: int, timeout: float = 30) -> None:
        with self.client() as c:
            c.wait_for_workers(n, timeout=timeout)

    @property
    def worker_pids(self) -> list[int]:
        """Pids of the worker processes (the nannies' children), as the scheduler reports them."""
        with self.client() as c:
            return sorted(c.run(os.getpid).values())

    def close(self) -> None:
        for proc in self.workers:
            _stop(proc)
        self.workers.clear()
        if self.scheduler is not None:
            _stop(self.scheduler)
            self.scheduler = None


@pytest.fixture(scope="session")
def dask_cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCLICluster]:
    """A scheduler and two 2-thread workers from the ``dask`` CLI; none can import nbexec."""
    cluster = DaskCLICluster(tmp_path_factory.mktemp("dask-cli"))
    try:
        cluster.start_scheduler()
        cluster.start_worker(wait=False)
        cluster.start_worker(wait=False)
        cluster.wait_for_workers(2)
        from nbexec.executors.dask import remote  # registers the module by value

        with cluster.client() as c:
            seen = c.run(remote.worker_has_nbexec)
            seen["scheduler"] = c.run_on_scheduler(remote.worker_has_nbexec)
        assert len(seen) == 3 and not any(seen.values()), f"workers can import nbexec: {seen}"
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def local_cluster_executor() -> Iterator:
    """A started DaskExecutor on a small thread-based LocalCluster it created."""
    from nbexec.executors.dask import DaskExecutor

    executor = DaskExecutor(
        cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False}
    )
    with executor.start():
        yield executor
