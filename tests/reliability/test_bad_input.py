"""Bad input everywhere: the line parser, the magics, executor_for, the command line, pickling.

- ``parse_line`` lets only ``LineError`` escape, for any text.
- ``%executor LINE`` / ``%%executor LINE`` in a real IPython InteractiveShell let only
  ``UsageError`` escape, and a bad line leaves the session executor exactly as it was.
- ``executor_for`` refuses every invalid option with a ValueError naming it, before anything starts.
- ``python -m nbexec run NB --executor BAD`` exits 2 with one line on stderr.
- Arguments and results that cannot be pickled (processes mode, a real Dask cluster) give an
  error naming the task.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import cloudpickle
import nbformat
import psutil
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbexec
from nbexec import session
from nbexec.config.modes import validate
from nbexec.config.options import DISPLAY_OPTIONS, MODES, OPTIONS, LineError, parse_line

pytestmark = pytest.mark.reliability
cloudpickle.register_pickle_by_value(sys.modules[__name__])

# --- strategies: invalid-dominated lines built from the real flags and modes ------------------

FLAGS = [flag for option in OPTIONS + DISPLAY_OPTIONS for flag in option.flags]
WORDS = [*MODES, "status", "stop", "Threads", "DASK", "proc", "thread", "local2", "-", "--"]
BAD_FLAGS = ["--worker", "-N", "-h", "--help", "--processes=1", "--adapt=1", "--timeout=0",
             "--memory-limit=", "--cluster-class=os.system", "--no-table=1", "---workers"]  # fmt: skip
VALUES = ["0", "1", "-1", "2", "3", "999999999999", "1e3", "1.5", "nan", "inf", "-inf", "x",
          "{}", "{", "[1]", '{"a": 1}', '{"n_workers": "x"}', "null", "tcp://127.0.0.1:1",
          "tls://", "''", '"', "'", "os.system", "builtins.eval", "subprocess.Popen",
          "distributed.Client", "distributed.LocalCluster", "2GiB", "-2GiB", "auto",
          "/nonexistent/ca.pem", "$HOME", "{x}", "\\", "\x00", "é", ";", "&&", "|"]  # fmt: skip

token = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(FLAGS),
    st.sampled_from(FLAGS),
    st.sampled_from(BAD_FLAGS),
    st.sampled_from(VALUES),
    st.sampled_from(VALUES),
    st.text(max_size=8),
)
lines = st.one_of(
    st.lists(token, max_size=7).map(" ".join),
    st.text(max_size=40),
)

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@FUZZ
@given(line=lines)
def test_parse_line_raises_only_line_error(line):
    for display in (False, True):
        try:
            mode, options = parse_line(line, display_options=display)
        except LineError as exc:
            assert str(exc)
            continue
        assert mode is None or mode in MODES
        assert isinstance(options, dict)


# --- the magics through a real InteractiveShell ---------------------------------------------


@pytest.fixture(scope="module")
def shell():
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "nbexec")
    yield sh
    session.stop()


@pytest.fixture
def baseline(monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    nbexec.use("sync")
    yield
    session.stop()


def _heavy(line: str, cell: bool) -> bool:
    """A VALID line that would start a cluster, a process pool or many threads: not fuzzed."""
    try:
        mode, options = parse_line(line, display_options=True)
        options = {k: v for k, v in options.items() if k not in ("no_table", "dashboard")}
        if not cell and line.split()[:1] in (["status"], ["stop"]):
            return False
        validate(mode or session.current_mode()[0] or "local", options)
    except (LineError, ValueError, IndexError):
        return False
    mode = mode or session.current_mode()[0]
    return mode in ("dask", "processes") or options.get("workers", 0) > 4


def _check_magic(shell, line: str, cell: str | None) -> None:
    assume(not _heavy(line, cell is not None))
    before, mode_before = session.current(), session.current_mode()
    try:
        if cell is None:
            shell.run_line_magic("executor", line)
        else:
            shell.run_cell_magic("executor", line, cell)
    except UsageError as exc:
        assert str(exc)
        assert session.current() is before, f"bad line {line!r} changed the session executor"
        assert session.current_mode() == mode_before
        assert before.started
    # Anything else escaping fails the test. A valid line may change the session: start over.
    if session.current() is not before or session.current_mode() != mode_before:
        nbexec.use("sync")


@FUZZ
@given(line=lines)
def test_line_magic_only_usage_error(shell, baseline, line):
    _check_magic(shell, line, None)


@FUZZ
@given(line=lines)
def test_cell_magic_only_usage_error(shell, baseline, line):
    _check_magic(shell, line, "x_fuzz = 1 + 1\nx_fuzz")


@pytest.mark.parametrize(
    "line",
    [
        "warp",
        "threads -n 0",
        "threads -n x",
        "threads --address tcp://127.0.0.1:1",
        "local -n 2",
        "sync --processes",
        "processes --threads-per-worker 2",
        "dask --cluster-class os.system",
        "dask --cluster-class builtins.eval",
        "dask --cluster-kwargs {",
        "dask --adapt 3 1",
        "dask --timeout 0",
        "dask --address tcp://127.0.0.1:1 -n 2",
        "dask --tls-ca-file /nonexistent/ca.pem",
        "dask --memory-limit lots",
        "threads --bogus",
        "threads 'unclosed",
    ],
)
def test_known_bad_lines(shell, baseline, line):
    before = session.current()
    for cell in (None, "y_bad = 1"):
        with pytest.raises(UsageError) as info:
            if cell is None:
                shell.run_line_magic("executor", line)
            else:
                shell.run_cell_magic("executor", line, cell)
        assert str(info.value).startswith("%executor")
        assert session.current() is before and session.current_mode() == ("sync", {})
    assert "y_bad" not in shell.user_ns


# --- executor_for -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    path = tmp_path_factory.mktemp("pem") / "x.pem"
    path.write_text("not a certificate")
    return str(path)


BAD_OPTIONS = [
    ("warp", {}, "unknown mode"),
    ("DASK", {}, "unknown mode"),
    ("threads", {"workers": 0}, "workers"),
    ("threads", {"workers": -1}, "workers"),
    ("threads", {"workers": 1.5}, "workers"),
    ("threads", {"workers": True}, "workers"),
    ("threads", {"workers": "2"}, "workers"),
    ("threads", {"address": "tcp://127.0.0.1:1"}, "address"),
    ("local", {"workers": 2}, "workers"),
    ("sync", {"workers": 1}, "workers"),
    ("processes", {"threads_per_worker": 2}, "threads_per_worker"),
    ("processes", {"workers": 0}, "workers"),
    ("dask", {"workers": -1}, "workers"),
    ("dask", {"threads_per_worker": 0}, "threads_per_worker"),
    ("dask", {"processes": "yes"}, "processes"),
    ("dask", {"memory_limit": "lots"}, "memory_limit"),
    ("dask", {"memory_limit": -5}, "memory_limit"),
    ("dask", {"address": ""}, "address"),
    ("dask", {"address": 5}, "address"),
    ("dask", {"address": "tcp://127.0.0.1:1", "workers": 2}, "workers"),
    (
        "dask",
        {"address": "tcp://127.0.0.1:1", "cluster_class": "distributed.LocalCluster"},
        "cluster_class",
    ),  # fmt: skip
    ("dask", {"cluster_class": "os.system"}, "os.system"),
    ("dask", {"cluster_class": "builtins.eval"}, "builtins.eval"),
    ("dask", {"cluster_class": "distributed.Client"}, "distributed.Client"),
    ("dask", {"cluster_class": "__import__('os').system('true')"}, "Cluster"),
    ("dask", {"cluster_class": 42}, "cluster_class"),
    (
        "dask",
        {"cluster_class": "distributed.SpecCluster", "threads_per_worker": 2},
        "threads_per_worker",
    ),  # fmt: skip
    ("dask", {"adapt": (3, 1)}, "adapt"),
    ("dask", {"adapt": (1,)}, "adapt"),
    ("dask", {"adapt": "1 2"}, "adapt"),
    ("dask", {"adapt": (-1, 2)}, "adapt"),
    ("dask", {"timeout": 0}, "timeout"),
    ("dask", {"timeout": "10"}, "timeout"),
    ("dask", {"timeout": float("nan")}, "timeout"),
    ("dask", {"cluster_kwargs": "{}"}, "cluster_kwargs"),
    ("dask", {"client_kwargs": [1]}, "client_kwargs"),
    ("dask", {"tls_ca_file": "/nonexistent/ca.pem"}, "tls"),
    (
        "dask",
        {"tls_ca_file": "PEM", "tls_cert": "PEM", "tls_key": "/nonexistent/k.pem"},
        "tls_key",
    ),  # fmt: skip
    ("dask", {"bogus": 1}, "bogus"),
]


def _fingerprint():
    me = psutil.Process()
    return threading.active_count(), len(me.children(recursive=True))


@pytest.mark.parametrize(("mode", "options", "named"), BAD_OPTIONS)
def test_executor_for_refuses_bad_options(mode, options, named, pem, monkeypatch):
    monkeypatch.delenv(session.ENV_VAR, raising=False)
    options = {k: (pem if v == "PEM" else v) for k, v in options.items()}
    before = _fingerprint()
    with pytest.raises(ValueError) as info:
        nbexec.executor_for(mode, **options)
    assert named in str(info.value)
    with pytest.raises(ValueError):
        nbexec.use(mode, **options)
    assert session.current() is None
    assert _fingerprint() == before, "something started before the options were refused"


# --- the command line -------------------------------------------------------------------------

CLI_BAD = [
    "warp",
    "",
    "threads -n x",
    "threads --address tcp://127.0.0.1:1",
    "dask --cluster-class os.system",
    "dask --cluster-kwargs {",
    "dask --no-table",
    "processes 'unclosed",
]


def test_command_line_bad_executor_exits_2_with_one_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("1 + 1"))
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    env = {k: v for k, v in __import__("os").environ.items() if k != session.ENV_VAR}
    procs = [
        (
            line,
            subprocess.Popen(
                [sys.executable, "-m", "nbexec", "run", str(path), "--executor", line],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=tmp_path,
            ),
        )  # fmt: skip
        for line in CLI_BAD
    ]
    for line, proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (line, out, err)
        assert out == "", (line, out)
        assert err.count("\n") == 1 and err.startswith("nbexec: error:"), (line, err)
    assert not (tmp_path / "nb.out.ipynb").exists()


# --- what cannot be pickled -------------------------------------------------------------------


def use_lock(lock):
    return 1


def make_generator():
    return (i for i in range(3))


def make_lock():
    return threading.Lock()


def double(x):
    return 2 * x


@pytest.fixture(scope="module")
def process_pool():
    executor = nbexec.executor_for("processes", workers=1)
    with executor.start():
        yield executor


@pytest.mark.parametrize(
    ("fn", "args"), [(use_lock, (threading.Lock(),)), (make_generator, ()), (make_lock, ())]
)
def test_unpicklable_in_processes_names_the_task(process_pool, fn, args):
    with pytest.raises(nbexec.TaskFailed) as info:
        with nbexec.run(process_pool):
            nbexec.submit(fn, *args)
            ok = nbexec.submit(double, 21)
    assert info.value.task_name == fn.__name__
    assert fn.__name__ in str(info.value) and "pickle" in str(info.value)
    assert ok.result() == 42
    with nbexec.run(process_pool):
        again = nbexec.map(double, range(3))
    assert [f.result() for f in again] == [0, 2, 4]


@pytest.fixture(scope="module")
def remote_executor(dask_cli_cluster):
    executor = nbexec.executor_for("dask", address=dask_cli_cluster.address)
    with executor.start():
        yield executor


def test_unpicklable_argument_on_dask_names_the_task(remote_executor):
    with pytest.raises(TypeError) as info:
        with nbexec.run(remote_executor) as run:
            nbexec.submit(use_lock, threading.Lock())
    assert "use_lock" in str(info.value) and "pickle" in str(info.value)
    assert run.summary() == {"use_lock": {"failed": 1}}
    with pytest.raises(TypeError, match="double"):
        with nbexec.run(remote_executor):
            nbexec.map(double, [1, threading.Lock()])


@pytest.mark.parametrize("fn", [make_generator, make_lock])
def test_unpicklable_result_on_dask_names_the_task(remote_executor, fn):
    with nbexec.run(remote_executor) as run:
        bad = nbexec.submit(fn)
        ok = nbexec.submit(double, 21)
    with pytest.raises(nbexec.TaskFailed) as info:
        bad.result()
    assert info.value.task_name == fn.__name__
    assert fn.__name__ in str(info.value)
    with pytest.raises(nbexec.TaskFailed, match=fn.__name__):
        run.resolve({"a": [ok, bad]})
    assert run.resolve([ok]) == [42]


_TOO_MANY_THREADS = """
import resource, threading
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
threading.stack_size(256 << 20)  # with the address-space limit: room for about ten threads
import nbexec
nbexec.use("threads", workers=2)
before = threading.active_count()
with nbexec.run("threads") as run:
    print("VALUE", nbexec.submit(abs, -3).result())
nbexec.use("threads", workers=200)  # threads start as work needs them: this starts none
with nbexec.run("threads") as run:
    import time
    futures = [nbexec.submit(time.sleep, 0.5) for _ in range(40)]
    print("SLEPT", len([f.result() for f in futures]))
from nbexec import session
print("MODE", session.current_mode())
nbexec.use("threads", workers=2)
print("THREADS", before, threading.active_count())
nbexec.stop()
"""


def test_more_threads_than_the_system_allows_leaves_none_behind():
    """A pool the system cannot fully start serves with the threads it got; its threads stop."""
    out = subprocess.run(
        [sys.executable, "-c", _TOO_MANY_THREADS], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["VALUE"] == "3"
    assert lines["SLEPT"] == "40"
    assert lines["MODE"] == "('threads', {'workers': 200})"
    before, after = lines["THREADS"].split()
    assert int(after) <= int(before) + 1
