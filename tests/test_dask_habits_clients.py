"""The user's own Clients: one with worker processes, and one that is not dask's default.

Cells run in a real IPython shell; the clusters are real LocalClusters made in plain cells.
"""

from __future__ import annotations

import pytest
from shell_helpers import ipython_shell, run_cell
from test_dask_habits import CELLS, LABELS, PERSIST

import nbexec
from nbexec import session

pytestmark = [pytest.mark.usefixtures("clean_session"), pytest.mark.slow]


@pytest.fixture(scope="module")
def shell():
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    yield from ipython_shell()


def _close(shell, *names: str) -> None:
    session.stop()
    run_cell(shell, "; ".join(f"{name}.close()" for name in names))
    for name in names:
        shell.user_ns.pop(name, None)


@pytest.mark.parametrize("forced", [None, "processes", "dask"])
def test_a_user_cluster_with_worker_processes(shell, capsys, monkeypatch, forced):
    run_cell(
        shell,
        "from distributed import Client, LocalCluster\n"
        "cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1,\n"
        "                       host='127.0.0.1', dashboard_address='127.0.0.1:0')\n"
        "client = Client(cluster)",
    )
    user_client = shell.user_ns["client"]
    try:
        if forced is not None:
            monkeypatch.setenv(session.ENV_VAR, forced)
        run_cell(shell, PERSIST)
        capsys.readouterr()
        for cell in CELLS:
            run_cell(shell, cell)
        lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(LABELS)]
        assert [ln.split()[0] for ln in lines] == list(LABELS)
        assert "array 1001000" in lines and "delayed 42 43" in lines
        assert "rows 120 5" in lines, lines
        # the dask cell ran on the user's cluster (its worker processes), not a second one
        if forced in (None, "dask"):
            run_cell(shell, "%%executor dask\nimport dask\nn = dask.delayed(len)([1, 2]).compute()")
            assert nbexec.current().client is user_client
            assert shell.user_ns["n"] == 2
        assert user_client.status == "running"
    finally:
        monkeypatch.delenv(session.ENV_VAR, raising=False)
        _close(shell, "client", "cluster")


def test_a_client_that_is_not_the_default_is_named_with_how_to_use_it(shell, capsys):
    run_cell(
        shell,
        "from distributed import Client, LocalCluster\n"
        "side = LocalCluster(processes=False, n_workers=1, threads_per_worker=1,\n"
        "                    dashboard_address='127.0.0.1:0')\n"
        "other = Client(side, set_as_default=False)",
    )
    other = shell.user_ns["other"]
    address = other.scheduler.address
    try:
        # as in dask: a Client made with set_as_default=False runs nothing by itself
        run_cell(shell, "%%executor dask\nimport dask\nx = dask.delayed(sum)([1, 2]).compute()")
        executor = nbexec.current()
        assert executor.client is not other and shell.user_ns["x"] == 3
        assert not getattr(executor, "user_client", False)
        capsys.readouterr()
        run_cell(shell, "%executor status")
        status = capsys.readouterr().out
        assert "is not dask's default Client (set_as_default=False)" in status, status
        assert f"'%executor dask --address {address}'" in status, status
        assert "client.as_current()" in status
        # what the note says works: the cell then runs on that client's workers
        probe = "where = dask.delayed(lambda: distributed.get_worker().address)().compute()"
        run_cell(shell, f"%%executor dask --address {address}\nimport dask, distributed\n{probe}")
        assert shell.user_ns["where"] in other.scheduler_info()["workers"]
        run_cell(shell, "%executor stop")
        assert other.status == "running"
    finally:
        _close(shell, "other", "side")
