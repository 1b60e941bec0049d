"""Cells get no stray stderr from distributed, whatever order clusters start and stop in."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # each test starts clusters in a fresh interpreter


def test_swapping_between_a_created_cluster_and_the_users_own_is_quiet():
    # The order of notebook 03: nbexec's LocalCluster, then the user's own LocalCluster, then
    # `%executor dask --address` to it (which stops nbexec's cluster), then stop, then close.
    script = textwrap.dedent(
        """
        import logging, time
        import nbexec
        from distributed import LocalCluster

        nbexec.use("dask", workers=1, processes=False)
        with nbexec.run() as run:
            nbexec.submit(abs, -1)
        cluster = LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0",
                               silence_logs=logging.ERROR)
        nbexec.use("dask", address=cluster.scheduler_address)
        with nbexec.run() as run:
            nbexec.submit(abs, -2)
        nbexec.stop()
        time.sleep(0.5)
        cluster.close()
        time.sleep(0.5)
        print("done")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    assert out.stderr == "", out.stderr


def test_errors_still_reach_stderr_and_user_logging_config_is_respected():
    script = textwrap.dedent(
        """
        import logging, dask, sys
        import nbexec
        nbexec.use("dask", workers=1, processes=False)
        nbexec.stop()  # its cluster's own silence_logs ends here; nbexec's filter stays
        logging.getLogger("distributed.scheduler").info("info line")
        logging.getLogger("distributed.scheduler").error("error line")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "info line" not in out.stderr and "error line" in out.stderr
    configured = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "DASK_LOGGING__DISTRIBUTED": "debug"},
    )  # fmt: skip
    assert "info line" in configured.stderr
