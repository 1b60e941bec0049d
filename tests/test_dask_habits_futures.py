"""Futures the cell makes with the user's own Client in an ``%%executor`` cell are in its table.

``client.submit``, ``client.map``, ``client.compute`` and ``client.persist`` on the user's Client
(the executor's under ``%%executor dask`` without options; dask's default client under the other
modes) are rows by task prefix, as Dask's progress shows them, the same in every mode; nbexec's own
tasks in the same cell are counted once. Cells run in a real IPython shell on a real LocalCluster
made in a plain cell.
"""

from __future__ import annotations

import pytest
from shell_helpers import MAGIC_LINES, ipython_shell, run_cell

import nbexec
from nbexec.frontends import magics

pytestmark = pytest.mark.usefixtures("clean_session")

SETUP = """
from distributed import Client, LocalCluster
cluster = LocalCluster(processes=False, n_workers=2, threads_per_worker=1,
                       dashboard_address="127.0.0.1:0")
client = Client(cluster)
import dask, nbexec

def inc(x):
    return x + 1

def boom(x):
    raise ValueError(f"no {x}")

@nbexec.task
def twice(x):
    return 2 * x
"""

CELL = """%%executor {mode}
a = client.submit(inc, 1)
bs = client.map(inc, range(10))
total = client.submit(sum, bs)
product = client.compute(dask.delayed(pow)(2, 10))
kept = client.persist(dask.delayed(abs)(-3))
t = twice(21)
values = (a.result(), total.result(), product.result(), kept.compute(), t)
"""


@pytest.fixture
def shell():
    yield from ipython_shell(SETUP)


@pytest.fixture
def user_client(shell):
    client = shell.user_ns["client"]
    yield client
    run_cell(shell, "%executor stop")
    assert client.status == "running", "nbexec closed the user's Client"
    run_cell(shell, "client.close(); cluster.close()")


@pytest.mark.parametrize("mode", ["dask", "local", "threads", "processes"])
def test_the_cells_own_client_calls_are_counted_by_prefix(shell, user_client, mode):
    # "dask" without options: the user's Client is the executor's
    run_cell(shell, CELL.format(mode="dask" if mode == "dask" else MAGIC_LINES[mode]))
    if mode == "dask":
        assert nbexec.current().client is user_client
    assert shell.user_ns["values"] == (2, 55, 1024, 3, 42)
    summary = magics.last_run().summary()
    assert summary == {
        "inc": {"success": 11},  # submit + map of 10
        "sum": {"success": 1},
        "pow": {"success": 1},
        "abs": {"success": 1},
        "twice": {"success": 1},  # nbexec's own task: once, not again as the client's
    }, summary
    # the next cell counts only its own
    run_cell(shell, f"%%executor {mode}\nagain = client.submit(inc, 100).result()")
    assert magics.last_run().summary() == {"inc": {"success": 1}}


@pytest.mark.parametrize("mode", ["dask", "threads"])
def test_a_failing_future_of_the_cell_shows_failed_and_the_cell_goes_on(shell, user_client, mode):
    # as with Dask: the error is the future's, raised where its result is asked for
    run_cell(shell, f"%%executor {mode}\nf = client.submit(boom, 3)\nok = client.submit(inc, 1)")
    last = magics.last_run()
    assert last.summary() == {"boom": {"failed": 1}, "inc": {"success": 1}}
    (failure,) = last.snapshot().failures
    assert failure.name == "boom" and failure.error.startswith("ValueError: no 3"), failure
    assert shell.user_ns["f"].status == "error"
    with pytest.raises(ValueError, match="no 3"):
        run_cell(shell, "f.result()")


def test_plain_cells_are_not_counted_and_the_client_is_left_as_it_was(shell, user_client):
    run_cell(shell, "%%executor dask\nx = client.submit(inc, 1).result()")
    assert "_graph_to_futures" not in vars(user_client), "the client keeps nbexec's hook"
    before = magics.last_run().snapshot()
    run_cell(shell, "y = client.submit(inc, 2).result()")
    assert magics.last_run().snapshot() == before and shell.user_ns["y"] == 3


def test_a_cell_that_raises_leaves_its_futures_to_the_user(shell, user_client):
    # the cell's run ends with the cell; its rows of futures still running say so, and the
    # futures, the user's, go on (nbexec does not cancel them)
    code = "%%executor dask\nimport time\nslow = client.submit(time.sleep, 2)\nraise KeyError('x')"
    with pytest.raises(KeyError):
        run_cell(shell, code)
    assert magics.last_run().summary() == {"sleep": {"cancelled": 1}}
    slow = shell.user_ns["slow"]
    assert slow.status == "pending"
    slow.result(timeout=30)
    assert slow.status == "finished"
