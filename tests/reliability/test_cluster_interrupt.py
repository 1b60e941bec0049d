"""SIGINT during a run on an EXTERNAL Dask cluster (the CLI scheduler and workers).

Pending tasks are cancelled (they never start, so never write their files); running ones are
released (they may finish on the worker: other people's work lives there, it is never killed);
the workers are untouched (same pids, no restart); the next run on the same executor works.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from reliability_helpers import script, wait_for

pytestmark = pytest.mark.reliability

CODE = r"""
import os, sys, time
import nbexec

ADDR, OUT = sys.argv[1] if len(sys.argv) > 1 else {addr!r}, {out!r}

def slow(i):
    open(os.path.join(OUT, f"start-{{i}}"), "w").close()
    time.sleep(3)
    open(os.path.join(OUT, f"done-{{i}}"), "w").close()
    return i

def quick(i):
    return i * 10

ex = nbexec.executor_for("dask", address=ADDR, timeout=10)
with ex.start():
    print("PID", os.getpid(), flush=True)
    try:
        with nbexec.run(ex) as run:
            futures = [run.submit(slow, i) for i in range({n})]
            print("SUBMITTED", len(futures), flush=True)
            run.wait()
        print("NOT-INTERRUPTED", flush=True)
    except KeyboardInterrupt:
        print("INTERRUPTED", time.time(), flush=True)
    print("STATES", sorted(set(f.state for f in futures)), flush=True)
    keys = {{f.key for f in futures}}
    time.sleep(0.5)
    left = ex.client.run_on_scheduler(
        lambda dask_scheduler: sorted(str(k) for k in dask_scheduler.tasks)
    )
    print("SCHEDULER-KEYS", len(keys & set(left)), flush=True)
    with nbexec.run(ex) as run2:
        again = nbexec.map(quick, range(8))
    print("NEXT", [f.result() for f in again], flush=True)
print("EXIT", flush=True)
"""


def test_sigint_on_external_cluster(dask_cli_cluster, tmp_path):
    out = tmp_path / "effects"
    out.mkdir()
    n = 12  # two workers x two threads run 4 at a time: 8 stay pending
    pids_before = dask_cli_cluster.worker_pids
    with dask_cli_cluster.client() as c:
        workers_before = sorted(c.scheduler_info(n_workers=-1)["workers"])
    code = CODE.format(addr=dask_cli_cluster.address, out=str(out), n=n)
    with script(code, tmp_path) as s:
        s.wait_line("SUBMITTED", 60)
        started = wait_for(
            lambda: (lambda f: f if len(f) >= 4 else None)(
                {p.name for p in out.iterdir() if p.name.startswith("start-")}
            ),
            30,
            "four tasks to start",
        )
        t_signal = time.time()
        os.kill(s.pid, signal.SIGINT)  # the script's own pid, as `kill -INT`
        t_interrupted = float(s.wait_line("INTERRUPTED", 10))
        latency = t_interrupted - t_signal
        assert latency < 2.0, f"KeyboardInterrupt after {latency:.2f} s"
        assert s.wait_line("STATES", 10) == "['cancelled']", s.lines()
        assert s.wait_line("SCHEDULER-KEYS", 10) == "0", (
            "interrupted tasks still held on the scheduler"
        )
        assert s.wait_line("NEXT", 30) == str([i * 10 for i in range(8)])
        assert s.wait(30) == 0, s.stderr()[-3000:]
        # Let every released task reach its end on the worker (3 s of sleep), then look.
        time.sleep(max(0.0, t_signal + 3.5 - time.time()))
        names = {p.name for p in out.iterdir()}
        started_after = {x for x in names if x.startswith("start-")}
        done = {x.replace("done-", "") for x in names if x.startswith("done-")}
        assert started_after == started, "a pending task started after the interrupt"
        assert done <= {x.replace("start-", "") for x in started}
    assert dask_cli_cluster.worker_pids == pids_before, "workers were restarted"
    with dask_cli_cluster.client() as c:
        assert sorted(c.scheduler_info(n_workers=-1)["workers"]) == workers_before
    print(f"\nexternal-cluster SIGINT -> KeyboardInterrupt in {latency * 1000:.0f} ms; "
          f"{len(started)} running released, {n - len(started)} pending cancelled")  # fmt: skip


KERNEL_SETUP = r"""
%load_ext nbexec
import os, time
import nbexec

@nbexec.task
def slow(i, out):
    open(os.path.join(out, f"start-{i}"), "w").close()
    time.sleep(3)
    open(os.path.join(out, f"done-{i}"), "w").close()
    return i

@nbexec.task
def quick(i):
    return i * 10
"""


def test_kernel_interrupt_on_external_cluster(dask_cli_cluster, tmp_path):
    """In a Jupyter kernel, ``%%executor dask --address``: Jupyter's interrupt (SIGINT to the
    kernel's process group) and ``kill -INT`` of the kernel's pid alone, one after the other on
    the same session executor."""
    from kernel_helpers import running_kernel

    pids_before = dask_cli_cluster.worker_pids
    magic = f"%%executor dask --address {dask_cli_cluster.address} --no-table"
    latencies = {}
    with running_kernel() as kernel:
        cell = kernel.execute(KERNEL_SETUP, timeout=60)
        assert cell.ok, cell.error_text
        for how in ("interrupt_kernel", "kill-INT-kernel-pid"):
            out = tmp_path / how
            out.mkdir()
            msg_id = kernel.submit(f"{magic}\nres = [slow(i, {str(out)!r}) for i in range(12)]")
            started = wait_for(
                lambda out=out: (lambda f: f if len(f) >= 4 else None)(
                    {p.name for p in out.iterdir() if p.name.startswith("start-")}
                ),
                60,
                "four tasks to start",
            )
            t_signal = time.monotonic()
            if how == "interrupt_kernel":
                kernel.interrupt()
            else:
                kernel.signal_kernel_only(signal.SIGINT)
            cell = kernel.collect(msg_id, timeout=30)
            latencies[how] = cell.reply_time - t_signal
            assert cell.ename == "KeyboardInterrupt", (cell.ename, cell.error_text)
            assert latencies[how] < 2.0, f"{how}: KeyboardInterrupt after {latencies[how]:.2f} s"
            nxt = kernel.execute(f"{magic}\nvals = [quick(i) for i in range(5)]\nvals", timeout=60)
            assert nxt.ok, nxt.error_text
            assert nxt.displays[-1]["text/plain"] == "[0, 10, 20, 30, 40]", nxt.displays
            time.sleep(max(0.0, t_signal + 3.5 - time.monotonic()))
            names = {p.name for p in out.iterdir()}
            assert {x for x in names if x.startswith("start-")} == started
            done = {x.replace("done-", "start-") for x in names if x.startswith("done-")}
            assert done <= started
    assert dask_cli_cluster.worker_pids == pids_before, "workers were restarted"
    print("\nkernel on external cluster: KeyboardInterrupt after "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in latencies.items()))  # fmt: skip
