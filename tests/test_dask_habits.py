"""A notebook that already uses Dask adopts nbexec: the user's Client, plain cells, persist, prefixes.

Cells run in a real IPython shell; the user's ``Client(LocalCluster(...))`` is made in a plain cell,
as a Dask notebook does. The same notebook runs as written and under ``NBEXEC_EXECUTOR`` for every
mode, and must print the same values.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from shell_helpers import ipython_shell, run_cell

import nbexec
from nbexec import session
from nbexec.frontends import magics

pytestmark = pytest.mark.usefixtures("clean_session")

USER_CLIENT = """
from distributed import Client, LocalCluster
cluster = LocalCluster(processes=False, n_workers=2, threads_per_worker=1,
                       dashboard_address="127.0.0.1:0")
client = Client(cluster)
"""

PERSIST = """
import dask, dask.array as da, dask.bag as db, dask.dataframe as dd

@dask.delayed
def inc(x):
    return x + 1

arr = (da.arange(1000, chunks=100) + 1).persist()
bag = db.from_sequence(range(100), npartitions=4).map(lambda v: v * 3).persist()
ts = dask.datasets.timeseries(start="2000-01-01", end="2000-01-06", freq="1h", seed=1,
                              partition_freq="1D").persist()
d = inc(41).persist()
"""

# The compute cells of the notebook, each on the mode written in it.
CELLS = [
    "%%executor threads\n"
    "print('array', int((arr * 2).sum().compute()))\n"
    "print('bag', bag.filter(lambda v: v % 2 == 0).sum().compute())",
    "%%executor processes\n"
    "print('df', ts.groupby('name').x.mean().round(6).compute().sort_index().head(3).to_dict())\n"
    "print('delayed', d.compute(), inc(d).compute())",
    "%%executor dask\n"
    "squares = (arr ** 2).persist()\n"
    "print('rows', len(ts.set_index('id').persist()), ts.set_index('id').npartitions)",
    "%%executor local\n"
    "print('squares', int(squares.sum().compute()))\n"
    "print('mean', round(float(ts.x.mean().compute()), 6))",
    # a plain cell: dask's default scheduler (the user's Client)
    "print('plain', int(arr.sum().compute()), int(squares.max().compute()))",
    # futures made with the user's Client: on its cluster whatever the cell's mode
    "%%executor dask\nprint('futures', client.gather(client.map(abs, [-1, -2, -3])))",
]
LABELS = ("array", "bag", "df", "delayed", "rows", "squares", "mean", "plain", "futures")


@pytest.fixture(scope="module")
def shell():
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    yield from ipython_shell()


@pytest.fixture
def user_client(shell):
    """The Client a Dask notebook makes in a plain cell; closed (by the test, not nbexec) after."""
    run_cell(shell, USER_CLIENT)
    client = shell.user_ns["client"]
    yield client
    session.stop()
    assert client.status == "running", "nbexec closed the user's Client"
    run_cell(shell, "client.close(); cluster.close()")
    for name in ("client", "cluster"):
        shell.user_ns.pop(name, None)


def _notebook(shell, capsys) -> tuple[list[str], list[str]]:
    """The printed values and the table of each ``%%executor`` cell (deterministic text)."""
    run_cell(shell, PERSIST)
    capsys.readouterr()
    tables = []
    for cell in CELLS:
        run_cell(shell, cell)
        if cell.startswith("%%executor"):
            tables.append(repr(magics.last_run().table))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(LABELS)]
    return lines, tables


@pytest.fixture(scope="module")
def expected():
    return {}


@pytest.mark.parametrize("forced", [None, "local", "threads", "processes", "dask"])
def test_a_dask_notebook_prints_the_same_in_every_mode(
    shell, user_client, capsys, monkeypatch, expected, forced
):
    if forced is not None:
        monkeypatch.setenv(session.ENV_VAR, forced)
    lines, tables = _notebook(shell, capsys)
    assert [line.split()[0] for line in lines] == list(LABELS)
    assert "array 1001000" in lines and "delayed 42 43" in lines
    assert "futures [1, 2, 3]" in lines
    reference = expected.setdefault("lines", lines)
    assert lines == reference, f"NBEXEC_EXECUTOR={forced} printed other values"
    # the same table for each cell whichever mode ran it (persisted data in the kernel or on
    # the cluster; the futures cell's client.map on the user's Client counted in every mode)
    assert all("nbexec tasks: none" not in table for table in tables), tables
    assert tables == expected.setdefault("tables", tables), forced
    assert tables[-1].splitlines()[1:] == ["  abs  3 success"], tables[-1]
    assert user_client.status == "running"


def test_dask_cell_runs_on_the_users_client_and_never_closes_it(shell, user_client, capsys):
    run_cell(shell, "%%executor dask\nimport dask\nx = dask.delayed(sum)([1, 2]).compute()")
    executor = nbexec.current()
    assert executor.client is user_client, "started a second cluster instead of the user's"
    assert shell.user_ns["x"] == 3
    capsys.readouterr()
    run_cell(shell, "%executor status")
    status = capsys.readouterr().out
    assert "client: yours" in status and "executor: dask" in status
    # persist in a dask cell leaves futures on the user's workers
    run_cell(
        shell, "%%executor dask\nimport dask.array as da\ny = da.ones(100, chunks=10).persist()"
    )
    values = list(dict(shell.user_ns["y"].__dask_graph__()).values())
    assert {type(v).__name__ for v in values} == {"Future"}
    assert all(v.client is user_client for v in values)
    run_cell(shell, "%executor threads")
    assert user_client.status == "running"
    assert run_cell(shell, "int(y.sum().compute())") == 100  # plain cell: the user's client
    run_cell(shell, "%%executor threads\nz = int(y.sum().compute())")
    assert shell.user_ns["z"] == 100
    run_cell(shell, "%executor stop")
    assert user_client.status == "running"


def test_a_closed_users_client_is_named_with_what_to_do(shell):
    run_cell(shell, USER_CLIENT)
    run_cell(shell, "import dask.array as da\nw = (da.arange(10, chunks=5) + 1).persist()")
    run_cell(shell, "client.close(); cluster.close()")
    with pytest.raises(
        RuntimeError,
        match=r"persisted on Client\(scheduler='inproc://.*closed.*persist the collection again",
    ):
        run_cell(shell, "%%executor threads\nw.sum().compute()")


def test_the_sessions_dask_executor_is_the_default_for_plain_cells(shell):
    import distributed

    probe = (
        "import dask, distributed\n"
        "where = dask.delayed(lambda: distributed.get_worker().address)().compute()"
    )
    run_cell(shell, "%executor dask --no-processes -n 1")
    executor = nbexec.current()
    assert distributed.default_client() is executor.client
    run_cell(shell, probe)
    assert shell.user_ns["where"] in executor.client.scheduler_info()["workers"]
    run_cell(shell, "%executor threads")
    with pytest.raises(ValueError):
        distributed.default_client()
    with pytest.raises(ValueError, match="No worker found"):
        run_cell(shell, probe)


def test_switching_between_dask_executors_leaves_dask_as_it_was(shell):
    # the new session executor starts before the old one stops: dask's default scheduler must
    # not be left "dask.distributed" with no client once the session stops
    import dask

    before = dask.config.get("scheduler", None)
    run_cell(shell, "%executor dask --no-processes -n 1")
    run_cell(shell, "%executor dask --no-processes -n 1 --threads-per-worker 2")
    assert dask.config.get("scheduler") == "dask.distributed"
    run_cell(shell, "%executor stop")
    assert dask.config.get("scheduler", None) == before
    assert run_cell(shell, "import dask\ndask.delayed(sum)([1, 2]).compute()") == 3


def test_rows_by_task_prefix_are_the_same_in_every_mode(shell):
    code = (
        "%%executor {mode}\n"
        "import dask.array as da, dask.bag as db\n"
        "a = da.ones((400, 400), chunks=100)\n"
        "total = int((a + a.T).sum().compute())\n"
        "counted = db.from_sequence(range(40), npartitions=4).map(str).count().compute()"
    )
    summaries = {}
    texts = {}
    for mode in ("local", "sync", "threads", "processes", "dask --no-processes -n 1"):
        run_cell(shell, code.format(mode=mode))
        assert shell.user_ns["total"] == 320000 and shell.user_ns["counted"] == 40
        last = magics.last_run()
        summaries[mode] = last.summary()
        texts[mode] = repr(last.table)
    first = summaries["local"]
    assert first["ones_like"] == {"success": 16} or any(
        v == {"success": 16} for v in first.values()
    )
    assert len(first) > 3, first  # a collection is several rows, not one
    for mode, summary in summaries.items():
        assert summary == first, mode
        assert texts[mode].splitlines()[1:] == texts["local"].splitlines()[1:], mode


@pytest.mark.parametrize("mode", ["local", "threads", "processes", "dask --no-processes -n 1"])
def test_a_cell_that_first_imports_dask_is_routed(mode):
    script = textwrap.dedent(f"""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        sh = InteractiveShell.instance()
        sh.run_line_magic("load_ext", "nbexec")
        assert "dask" not in sys.modules
        r = sh.run_cell('''%%executor {mode} --no-table
        import dask
        x = dask.delayed(sum)([1, 2, 3]).compute()
        p = dask.delayed(sum)([4, 5]).persist()
        ''')
        assert r.success, r.error_in_exec
        from nbexec.frontends import magics
        kinds = {{type(v).__name__ for v in dict(sh.user_ns["p"].__dask_graph__()).values()}}
        print(kinds, sh.user_ns["p"].compute(), sh.user_ns["x"], magics.last_run().summary())
        sh.run_line_magic("executor", "stop")
        """)
    env = dict(os.environ)
    env.pop(session.ENV_VAR, None)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    # persist() in the same cell ran there too: data in the kernel, futures on Dask's workers
    kind = "Future" if mode.startswith("dask") else "int"
    assert out.stdout.strip().endswith(f"{{'{kind}'}} 9 6 {{'sum': {{'success': 2}}}}"), out.stdout
