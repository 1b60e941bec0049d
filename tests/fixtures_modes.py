"""One started executor per mode, shared by a test module: ``executors(mode)``, ``MODES``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from nbexec import executor_for
from nbexec.executors import Executor

# "dask-remote" starts a real `dask scheduler` and workers from the command line.
REMOTE = pytest.param("dask-remote", marks=pytest.mark.slow)
MODES = ["local", "sync", "threads", "processes", "dask", REMOTE]
# The five modes a cell names, processes and dask marked slow (they start pools or clusters).
CELL_MODES = [
    "local",
    "sync",
    "threads",
    pytest.param("processes", marks=pytest.mark.slow),
    pytest.param("dask", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def executors(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Executor]]:
    """``executors(mode)``: one started executor per mode, shared by the module's tests."""
    started: dict[str, Executor] = {}
    stacks = []

    def get(mode: str) -> Executor:
        if mode not in started:
            if mode == "dask":
                ex = executor_for("dask", workers=2, threads_per_worker=1, processes=False)
            elif mode == "dask-remote":
                cluster = request.getfixturevalue("dask_cli_cluster")
                ex = executor_for("dask", address=cluster.address)
            elif mode in ("threads", "processes"):
                ex = executor_for(mode, workers=2)
            else:
                ex = executor_for(mode)
            cm = ex.start()
            cm.__enter__()
            stacks.append(cm)
            started[mode] = ex
        return started[mode]

    yield get
    for cm in reversed(stacks):
        cm.__exit__(None, None, None)
