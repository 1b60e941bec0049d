"""A kernel that goes away leaves no worker processes behind.

In a real Jupyter kernel: the session executor is a process pool (``nbexec.use("processes")``)
with a run done, and a DaskExecutor on a LocalCluster with worker processes is started too. Then
the kernel is (a) shut down gracefully, or (b) killed with SIGKILL sent to the kernel's own PID
only (jupyter_client's ``kill_kernel`` signals the whole process group, which would hide orphans).
Every descendant seen before must be gone 5 s later.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from kernel_helpers import running_kernel
from reliability_helpers import alive, descendants, kill_tree

pytestmark = pytest.mark.reliability

SETUP = """
import nbexec
nbexec.use("processes", workers=2)
with nbexec.run() as run:
    squares = nbexec.map(pow, range(6), [2] * 6)
print("pool", [f.result() for f in squares])

cluster_executor = nbexec.executor_for("dask", workers=2, processes=True, threads_per_worker=1)
_cluster_ctx = cluster_executor.start()
_cluster_ctx.__enter__()
with nbexec.run(cluster_executor) as run:
    cubes = nbexec.map(pow, range(6), [3] * 6)
print("dask", [f.result() for f in cubes])
"""


@pytest.mark.parametrize("how", ["graceful-shutdown", "sigkill-kernel-pid"])
def test_no_worker_processes_outlive_the_kernel(how):
    with running_kernel(startup_timeout=60) as kernel:
        cell = kernel.execute(SETUP, timeout=120)
        assert cell.ok, cell.error_text
        assert cell.streams.get("stdout", "").splitlines() == [
            "pool [0, 1, 4, 9, 16, 25]",
            "dask [0, 1, 8, 27, 64, 125]",
        ], cell.streams
        pid = kernel.pid
        before = descendants(pid)
        # 2 pool children + 2 LocalCluster worker processes (+ multiprocessing's helpers)
        assert len(before) >= 4, [p.cmdline() for p in before]
        try:
            t0 = time.monotonic()
            if how == "graceful-shutdown":
                kernel.km.shutdown_kernel(now=False)
            else:
                os.kill(pid, signal.SIGKILL)
            deadline = t0 + 5
            while alive(before) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = alive(before)
            gone_after = time.monotonic() - t0
            assert not left, f"{how}: still alive after 5 s: " + "; ".join(
                f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in left
            )
            print(f"\n{how}: {len(before)} descendants gone {gone_after:.2f} s after")
        finally:
            kill_tree([p.pid for p in alive(before)])
