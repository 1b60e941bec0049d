"""``%executor status`` after an interrupt on an EXTERNAL cluster (the CLI scheduler and workers).

The running tasks are blocked in C (``time.sleep``) and are not killed there (other people's work
lives on that cluster): the status says which workers still run how many interrupted tasks, until
they end; the pending tasks are cancelled and never start; the workers keep their processes.
"""

from __future__ import annotations

import re
import sys

import cloudpickle
import pytest
from reliability_helpers import wait_for

import nbexec
from nbexec import session

pytestmark = pytest.mark.reliability
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import it


def blocked(out: str, i: int) -> int:
    import time
    from pathlib import Path

    Path(out, f"start-{i}").touch()
    time.sleep(6)  # blocked in C, past the interrupt
    Path(out, f"done-{i}").touch()
    return i


def busy_lines(text: str) -> dict[str, int]:
    found = re.findall(
        r"busy: (\S+) still runs (\d+) interrupted or cancelled tasks? \(not killed\)", text
    )
    return {addr: int(n) for addr, n in found}


def test_status_shows_threads_busy_with_interrupted_tasks(dask_cli_cluster, tmp_path):
    out = tmp_path / "effects"
    out.mkdir()
    pids_before = dask_cli_cluster.worker_pids
    executor = nbexec.executor_for("dask", address=dask_cli_cluster.address, timeout=10)
    nbexec.use(executor)
    try:
        assert "busy:" not in session.status().text()
        futures = []
        with pytest.raises(KeyboardInterrupt):
            with nbexec.run(executor) as run:
                futures = [run.submit(blocked, str(out), i) for i in range(8)]  # 4 threads
                wait_for(lambda: len(list(out.glob("start-*"))) >= 4, 30, "four tasks to start")
                raise KeyboardInterrupt  # as Ctrl-C in the waiting thread
        started = {p.name for p in out.glob("start-*")}
        assert len(started) == 4, started

        def busy() -> dict[str, int] | None:  # four threads busy: the sleeps have not ended
            found = busy_lines(session.status().text())
            return found if sum(found.values()) == 4 else None

        found = wait_for(busy, 10, "the status to report four busy threads")
        with dask_cli_cluster.client() as c:
            workers = sorted(c.scheduler_info(n_workers=-1)["workers"])
        assert sorted(found) == workers and set(found.values()) == {2}, found
        # Nothing was killed: the blocked tasks end on their own and the report clears.
        wait_for(lambda: len(list(out.glob("done-*"))) == 4, 30, "the blocked tasks to end")
        wait_for(lambda: "busy:" not in session.status().text(), 10, "the busy lines to clear")
        assert {p.name for p in out.glob("start-*")} == started, "a cancelled task started"
        assert dask_cli_cluster.worker_pids == pids_before, "workers were restarted"
        assert all(f.state == "cancelled" for f in futures), {f.state for f in futures}
        with nbexec.run(executor):
            again = nbexec.map(abs, [-1, -2])
        assert [f.result() for f in again] == [1, 2]
    finally:
        nbexec.stop()
