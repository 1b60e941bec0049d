"""A scheduler the session is connected to goes away: no distributed ERROR/CRITICAL lines (e.g.
"Failed to reconnect to scheduler after 10.00 seconds, closing client") reach stderr later."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from fixtures_dask import DaskCLICluster

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

SCRIPT = """
import sys, time
import nbexec
nbexec.use("dask", address=sys.argv[1], timeout=10)
with nbexec.run():
    print("VALUE", nbexec.submit(abs, -2).result(), flush=True)
print("CONNECTED", flush=True)
sys.stdin.readline()  # the scheduler is stopped now
time.sleep(14)  # distributed gives up reconnecting after 10 s
print("AFTER", flush=True)
"""


def test_lost_scheduler_leaves_stderr_quiet(tmp_path):
    cluster = DaskCLICluster(tmp_path)
    proc = None
    try:
        cluster.start_scheduler()
        cluster.start_worker(wait=False)
        cluster.wait_for_workers(1)
        path = tmp_path / "lost.py"
        path.write_text(textwrap.dedent(SCRIPT))
        proc = subprocess.Popen(
            [sys.executable, str(path), cluster.address], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout.readline().startswith("VALUE")
        assert proc.stdout.readline().startswith("CONNECTED")
        cluster.close()
        proc.stdin.write("\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
        assert "AFTER" in out
        loud = [ln for ln in err.splitlines() if " - ERROR - " in ln or " - CRITICAL - " in ln]
        assert not loud, err
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        cluster.close()
