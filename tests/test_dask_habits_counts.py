"""The table's per-prefix counts for dask collections: the tasks dask runs, the same in every mode.

Cells run in a real IPython shell; Dask cells run on a real LocalCluster, whose scheduler (through a
real scheduler plugin) says how many tasks it ran.
"""

from __future__ import annotations

import json

import pytest
from shell_helpers import MAGIC_LINES, ipython_shell, run_cell

from nbexec.frontends import magics

pytestmark = pytest.mark.usefixtures("clean_session")

MODES = ("local", "threads", "processes", "dask")


@pytest.fixture(scope="module")
def shell():
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    yield from ipython_shell()


def _table(shell, line: str, code: str) -> tuple[dict, str]:
    run_cell(shell, f"%%executor {line} --no-table\n{code}")
    last = magics.last_run()
    return last.summary(), "\n".join(repr(last.table).splitlines()[1:])


def test_a_persisted_timeseries_counts_the_same_whether_its_data_is_in_the_kernel_or_on_dask(shell):
    # persisted in the local modes, the frame's partitions are data in the kernel; on Dask they
    # are futures. An alias of a partition is one task either way (it was 29 vs 30 here).
    persist = "import dask\nts = dask.datasets.timeseries(seed=1).persist()"
    compute = "head = ts[['x', 'y']].resample('1h').mean().head()"
    summaries, tables, heads = {}, {}, {}
    for mode in MODES:
        run_cell(shell, f"%%executor {MAGIC_LINES[mode]} --no-table\n{persist}")
        summaries[mode], tables[mode] = _table(shell, MAGIC_LINES[mode], compute)
        heads[mode] = shell.user_ns["head"].round(9).to_json(date_format="iso")
    first = summaries["local"]
    assert "timeseries" in first, first
    for mode in MODES:
        assert summaries[mode] == first, (mode, summaries)
        assert tables[mode] == tables["local"], mode
        assert heads[mode] == heads["local"], mode
    # head() needs the first partition only: 30 partitions do not make 30 rows of work
    assert sum(sum(states.values()) for states in first.values()) < 10, first


BAG = """
import json, random
import dask.bag as db
rng = random.Random(1)
jobs = ['Baker', 'Clerk', 'Pilot', 'Nurse', 'Cook', 'Poet']
records = [{'age': rng.randint(0, 100), 'occupation': rng.choice(jobs),
            'name': ['N%d' % i, 'S'], 'address': {'city': 'C%d' % (i % 7)}}
           for i in range(600)]
b = db.from_sequence(records, npartitions=6).map(json.dumps).map(json.loads)

def flatten(record):
    return {'age': record['age'], 'occupation': record['occupation'],
            'name': ' '.join(record['name']), 'city': record['address']['city']}
"""

# The dask-examples bag notebook's last two cells (to_dataframe computes its meta from take(1)).
BAG_CELLS = (
    "df = b.map(flatten).to_dataframe()\nhead = df.head()",
    "top = df[df.age > 30].occupation.value_counts().nlargest(3).compute()",
)


class _Ran:
    """A scheduler plugin counting the tasks the scheduler ran (processing -> memory)."""

    def __new__(cls):
        from distributed.diagnostics.plugin import SchedulerPlugin

        class Ran(SchedulerPlugin):
            name = "nbexec-test-ran"

            def __init__(self) -> None:
                self.count = 0

            def transition(self, key, start, finish, *args, **kwargs) -> None:
                if start == "processing" and finish == "memory":
                    self.count += 1

        return Ran()


def test_the_bag_example_counts_the_tasks_the_scheduler_runs_in_every_mode(shell):
    run_cell(
        shell,
        "from distributed import Client, LocalCluster\n"
        "cluster = LocalCluster(processes=False, n_workers=2, threads_per_worker=1,\n"
        "                       dashboard_address='127.0.0.1:0')\n"
        "client = Client(cluster)",
    )
    ran = _Ran()
    shell.user_ns["cluster"].scheduler.add_plugin(ran)
    try:
        run_cell(shell, BAG)
        tables: dict = {}
        values: dict = {}
        for mode in MODES:
            for code in BAG_CELLS:
                before = ran.count
                # "dask" with no options: the user's Client, whose scheduler counts
                summary, text = _table(shell, "dask" if mode == "dask" else MAGIC_LINES[mode], code)
                tables.setdefault(code, {})[mode] = text
                if mode == "dask":  # the table counts what the scheduler ran, no more
                    total = sum(sum(states.values()) for states in summary.values())
                    assert total == ran.count - before, (code, summary, ran.count - before)
            values[mode] = json.dumps(
                [shell.user_ns["head"].to_json(date_format="iso"), shell.user_ns["top"].to_dict()]
            )
        for code, by_mode in tables.items():
            for mode in MODES:
                assert by_mode[mode] == by_mode["local"], (code, mode, by_mode)
        assert len(set(values.values())) == 1, values
    finally:
        run_cell(shell, "%executor stop")
        run_cell(shell, "client.close(); cluster.close()")
