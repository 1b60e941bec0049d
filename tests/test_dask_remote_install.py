"""nbexec's task code (the ``_nbexec_remote`` package) where nbexec is not installed: every module
of it is installed once per process, from the client's sources, and tasks carry only their data.

The cluster tests use real CLI scheduler and workers that cannot import nbexec nor the package.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time

import cloudpickle
import pytest

import _nbexec_remote as rt
import nbexec
from nbexec.executors.dask import DaskExecutor, remote

# Workers cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PACKAGE = "_nbexec_remote"


def inc(x: int) -> int:
    return x + 1


def _modules() -> dict:
    return {n: m for n, m in sys.modules.items() if n.split(".")[0] == PACKAGE}


def _task_code() -> tuple:
    """This process's task code: its digest, its modules, whether any was loaded from a file."""
    modules = _modules()
    return (
        getattr(modules.get(PACKAGE), "__nbexec_digest__", None),
        sorted(modules),
        any(getattr(m.__spec__, "has_location", False) for m in modules.values()),
    )


def _module_ids() -> dict:
    return {n: id(m) for n, m in _modules().items()}


def _nbexec_plugins(dask_scheduler) -> list:
    return sorted(
        n for n in [*dask_scheduler.worker_plugins, *dask_scheduler.plugins] if "nbexec" in n
    )


# --- one process, no cluster --------------------------------------------------------------------

CHILD = """
import json, pickle, sys
install, args, calls = pickle.loads(sys.stdin.buffer.read())
outcomes = [install(*args), install(*args)]
for data, args in calls:
    try:
        outcomes.append(repr(pickle.loads(data)(*args)))
    except Exception as exc:
        outcomes.append(type(exc).__name__ + ": " + str(exc))
files = {n: m.__file__ for n, m in sys.modules.items() if n.split(".")[0] == "_nbexec_remote"}
print(json.dumps([outcomes, files, "nbexec" in sys.modules]))
"""


def test_a_process_without_nbexec_gets_every_module_from_one_install(tmp_path):
    """A stale copy of the package is replaced; a second install with the same sources does
    nothing; task wrappers pickled here by reference then run there (output, timeouts)."""
    from nbexec.executors._dask_support import _remote_sources

    (tmp_path / "nbexec").mkdir()
    (tmp_path / "nbexec" / "__init__.py").write_text("raise ImportError('no nbexec here')\n")
    (tmp_path / PACKAGE).mkdir()
    (tmp_path / PACKAGE / "__init__.py").write_text("raise ImportError('a stale copy')\n")
    sources, digest = _remote_sources()
    calls = [
        (pickle.dumps(rt.TaskCall(print, 1, None, timeout=5.0)), ("hello from the task",)),
        (pickle.dumps(rt.TaskCall(time.sleep, 2, None, timeout=0.2)), (5,)),
    ]
    payload = cloudpickle.dumps((remote.install_package, (PACKAGE, sources, digest), calls))
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=payload,
        capture_output=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,  # not this checkout, which holds the real package
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    outcomes, files, has_nbexec = json.loads(lines[-1])
    assert outcomes == [
        "installed",
        "present",
        "None",
        "TimeoutError: the task ran longer than its timeout of 0.2 s",
    ]
    assert lines[0] == "hello from the task"
    assert files == {name: filename for name, (filename, _) in sources.items()}
    assert len(files) > 1 and not has_nbexec


def test_the_task_code_imports_only_the_standard_library():
    """What process-pool children and workers without nbexec import: no distributed, no nbexec."""
    code = (
        "import sys; before = set(sys.modules); import _nbexec_remote; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}"
        " - set(sys.stdlib_module_names)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == repr([PACKAGE]), done.stderr


# --- CLI scheduler and workers without nbexec ---------------------------------------------------


@pytest.fixture
def ext(dask_cli_cluster):
    """A DaskExecutor started on the CLI cluster."""
    executor = DaskExecutor(address=dask_cli_cluster.address)
    with executor.start():
        yield executor


@pytest.mark.reliability
def test_task_code_is_installed_once_and_tasks_carry_only_their_data(ext, dask_cli_cluster):
    from distributed.protocol.pickle import dumps

    digest = rt.__nbexec_digest__
    names = sorted(remote.package_sources(rt.__spec__) or {})
    assert names == sorted(_modules()) and len(names) > 1
    client = ext.client
    # Every module, built from the client's sources on the scheduler and every worker.
    seen = {**client.run(_task_code), "scheduler": client.run_on_scheduler(_task_code)}
    assert len(seen) >= 3 and all(list(v) == [digest, names, False] for v in seen.values()), seen
    ids = {**client.run(_module_ids), "scheduler": client.run_on_scheduler(_module_ids)}
    # A task's payload: the wrappers by reference, the user's function by value, nothing else.
    with nbexec.run(ext) as run:
        payload = dumps(rt.ByValue(rt.TaskCall(inc, 7, run._emit, 2, 0.5)))
        mapped = dumps(rt.MapCall("t" * 32, rt.MappedTaskCall(inc, run._emit)))
    for data in (payload, mapped):
        assert len(data) < 1500 and b"in_task_body" not in data and b"_buffer_event" not in data
    # Starting again with the same code registers nothing new and installs nothing again.
    before = client.run_on_scheduler(_nbexec_plugins)
    again = DaskExecutor(address=dask_cli_cluster.address)
    with again.start():
        assert again.wait(again.submit(inc, 1)) == 2
    assert client.run_on_scheduler(_nbexec_plugins) == before and len(before) == 2
    assert {**client.run(_module_ids), "scheduler": client.run_on_scheduler(_module_ids)} == ids


@pytest.mark.reliability
def test_a_worker_that_joins_later_gets_the_task_code(ext, dask_cli_cluster):
    proc = dask_cli_cluster.start_worker("--resources", "LATE=1", nthreads=1)
    try:
        late = nbexec.task(_task_code, name="late", tags=["dask-resource:LATE=1"])
        late_inc = nbexec.task(inc, name="late_inc", tags=["dask-resource:LATE=1"])
        with nbexec.run(ext) as run:
            code = late()
            values = nbexec.map(late_inc, range(5))
        assert run.summary() == {"late": {"success": 1}, "late_inc": {"success": 5}}
        assert [v.result() for v in values] == [1, 2, 3, 4, 5]
        assert list(code.result()) == [rt.__nbexec_digest__, sorted(_modules()), False]
    finally:
        dask_cli_cluster.kill_worker(proc)


@nbexec.task(timeout=5)
def chatty(n: int) -> int:
    for i in range(n):
        print(f"line {i}")
    print("to stderr", file=sys.stderr)
    return n


@nbexec.task(timeout=1)
def outlasts() -> None:
    print("started")
    try:
        while True:
            sum(range(100))
    except BaseException as exc:
        print(f"stopped by {type(exc).__name__}")
        raise


@nbexec.task(timeout=0.5)
def blocked() -> None:
    time.sleep(2)


def _output(future, text: str) -> str:
    deadline = time.monotonic() + 10  # Dask: the whole text may follow the result
    while future.output != text and time.monotonic() < deadline:
        time.sleep(0.02)
    return future.output


@pytest.mark.reliability
def test_a_worker_without_nbexec_runs_tasks_that_print_and_time_out(ext):
    """The installed modules at work together: the wrapper, output capture, events and the
    worker's timeout watchdog (which stopped the Python loop: the kernel had not yet)."""
    with pytest.raises(nbexec.TaskFailed) as info:
        with nbexec.run(ext) as run:
            fine = chatty(3)
            late = outlasts()
    assert fine.result() == 3 and run.tracker.record(fine._id).where.startswith("tcp://")
    assert _output(fine, "line 0\nline 1\nline 2\nto stderr\n") == (
        "line 0\nline 1\nline 2\nto stderr\n"
    )
    cause = info.value.__cause__
    assert isinstance(cause, TimeoutError) and "timeout of 1 s" in str(cause), repr(cause)
    assert _output(late, "started\nstopped by TaskTimeout\n") == "started\nstopped by TaskTimeout\n"


@pytest.mark.reliability
def test_a_task_blocked_past_its_timeout_shows_where_it_was_without_the_wrappers(ext):
    with pytest.raises(nbexec.TaskFailed) as info:
        with nbexec.run(ext):
            blocked()
    message = str(info.value.__cause__)
    assert "timeout of 0.5 s" in message and "it was at:" in message, message
    assert "time.sleep(2)" in message and PACKAGE not in message, message
