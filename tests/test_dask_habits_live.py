"""Dask collections in the run's table while they run, and when a task fails, in every mode.

On Dask the prefix rows move while the graph runs (read from the scheduler, a few polls a second,
never a message per task); a failing task shows as failed in its prefix row, naming its key, and the
cell raises the user's exception. Real clusters only: a LocalCluster and (slow) CLI workers that
cannot import nbexec.
"""

from __future__ import annotations

import threading
import time
import traceback

import pytest
from shell_helpers import MAGIC_LINES, ipython_shell, run_cell

import nbexec
from nbexec.executors.dask import DaskExecutor
from nbexec.frontends import magics

pytestmark = pytest.mark.usefixtures("clean_session")

NAPS = 8
NAP = 0.8  # seconds; longer than a worker heartbeat (0.5 s), so "running" shows


def _naps(n: int = NAPS) -> tuple:
    import dask

    return dask.compute(
        *[dask.delayed(time.sleep)(NAP, dask_key_name=f"nap-{i}") for i in range(n)]
    )


def _sampled_run(executor, n: int = NAPS) -> tuple[list[dict], dict, str, int]:
    """Run ``n`` naps on ``executor``; sample the run's summary every 0.1 s while they run."""
    import dask

    samples: list[dict] = []
    done = threading.Event()
    with nbexec.run(executor) as run:

        def sample() -> None:
            while not done.wait(0.1):
                samples.append(run.summary().get("nap", {}))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            _naps(n)
        finally:
            done.set()
            sampler.join()
        live = dask.config.get("scheduler")._live
    return samples, run.summary(), repr(run.table), live


def _mid_run(samples: list[dict], n: int = NAPS) -> list[dict]:
    """Samples taken while some naps were done or running and others pending."""
    return [s for s in samples if s.get("pending", 0) and s.get("pending") < n]


def _check_live(samples, summary, text, live, elapsed, n=NAPS):
    assert summary == {"nap": {"success": n}}
    assert _mid_run(samples, n), f"no sample with some done or running and some pending: {samples}"
    assert any(s.get("running") for s in samples), f"never running: {samples}"
    # bounded polling: at most 1/INTERVAL polls a second, one message each, ended with the run
    assert 0 < live.polls <= elapsed / 0.25 + 2, (live.polls, elapsed)
    polls = live.polls
    time.sleep(0.6)
    assert live.polls == polls and live._thread is None, "the poller outlived the graph"
    with nbexec.run("local") as run:
        _naps(n)
    assert text.splitlines()[1:] == repr(run.table).splitlines()[1:], "final text differs"


@pytest.mark.slow
def test_prefix_counts_move_while_a_graph_runs_on_dask():
    executor = DaskExecutor(
        cluster_kwargs={"processes": False, "n_workers": 2, "threads_per_worker": 1}
    )
    with executor.start():
        t0 = time.monotonic()
        samples, summary, text, live = _sampled_run(executor)
        elapsed = time.monotonic() - t0
    _check_live(samples, summary, text, live, elapsed)


@pytest.mark.slow
def test_prefix_counts_move_on_a_scheduler_without_nbexec(dask_cli_cluster):
    executor = DaskExecutor(address=dask_cli_cluster.address)
    n = 3 * 4  # three rounds on its 2 workers x 2 threads
    with executor.start():
        t0 = time.monotonic()
        samples, summary, text, live = _sampled_run(executor, n)
        elapsed = time.monotonic() - t0
    _check_live(samples, summary, text, live, elapsed, n)


def test_local_modes_count_a_graph_while_it_runs():
    with nbexec.run("threads", workers=2) as run:
        seen = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                seen.append(run.summary().get("nap", {}))

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            _naps()
        finally:
            done.set()
            sampler.join()
    assert [s for s in seen if 0 < s.get("success", 0) < NAPS], seen


FAILING = """{magic}
import dask

def boom(x):
    if x == 3:
        raise ValueError(f"bad {{x}}")
    return x

parts = [dask.delayed(boom)(i) for i in range(6)]
total = dask.delayed(sum)(parts).compute()
"""


@pytest.fixture(scope="module")
def shell():
    yield from ipython_shell()


@pytest.mark.parametrize("mode", list(MAGIC_LINES))
def test_a_failing_task_shows_in_its_prefix_row_and_the_cell_raises_it(shell, mode):
    with pytest.raises(ValueError, match="^bad 3$") as info:
        run_cell(shell, FAILING.format(magic=f"%%executor {MAGIC_LINES[mode]}"))
    run = magics.last_run()
    summary = run.summary()
    assert summary["boom"].get("failed") == 1, summary  # only the task that raised
    assert summary["sum"] == {"cancelled": 1}, summary
    (failure,) = run.tracker.snapshot().failures
    assert failure.name == "boom"
    assert failure.error.startswith("ValueError: bad 3 (task boom-"), failure.error
    assert "failed (1)" in run.table._repr_mimebundle_()["text/html"]
    text = "".join(traceback.format_exception(info.value))
    assert "in boom" in text, text  # the user's function, not only dask's frames
    if mode != "dask":  # distributed ships cell functions without their file
        assert 'raise ValueError(f"bad {x}")' in text, text
