"""nbexec.testing: the shipped nbval sanitize file, checked against real outputs."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest

import nbexec
import nbexec.testing as testing

ROOT = Path(__file__).resolve().parent.parent


def test_sanitize_file_ships_inside_the_package():
    path = Path(testing.sanitize_file())
    assert path.is_absolute() and path.is_file()
    assert path.parent == Path(testing.__file__).resolve().parent
    assert path.name == "nbval-sanitize.cfg"


def test_patterns_are_read_as_nbval_reads_them():
    from nbval.plugin import get_sanitize_patterns

    text = Path(testing.sanitize_file()).read_text(encoding="utf-8")
    assert tuple(get_sanitize_patterns(text)) == testing.sanitize_patterns()
    assert len(testing.sanitize_patterns()) >= 6
    for regex, _ in testing.sanitize_patterns():
        re.compile(regex)


def test_nbval_args():
    # one "--opt=PATH" word: a separate PATH word would make pytest take its folder as rootdir
    assert testing.nbval_args() == ["--nbval", f"--nbval-sanitize-with={testing.sanitize_file()}"]
    assert testing.nbval_args(lax=True)[0] == "--nbval-lax"


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("tcp://127.0.0.1:40123", "tcp://127.0.0.1:8786", "tcp://ADDR"),
        ("tls://scheduler.example.org:8786", "tls://10.0.0.5:9000", "tls://ADDR"),
        ("inproc://10.0.2.15/4121/1", "inproc://172.17.0.3/77/12", "inproc://ADDR"),
        (
            "http://127.0.0.1:8787/status",
            "http://127.0.0.1:41233/status",
            "http://127.0.0.1:PORT/status",
        ),
        ("localhost:8888", "localhost:9999", "localhost:PORT"),
        ("http://192.0.2.2:38191/status", "http://10.1.2.3:8787/status", "http://IP:PORT/status"),
        ("<Lock at 0x7f3a2b1c9d50>", "<Lock at 0x55d0aa>", "<Lock at 0xADDR>"),
        (str(uuid.uuid4()), str(uuid.uuid4()), "UUID"),
        (f"inc-0-{uuid.uuid4().hex}", f"inc-0-{uuid.uuid4().hex}", "inc-0-UUIDHEX"),
        (
            '<span class="nbexec-time">51 ms</span>',
            '<span class="nbexec-time"></span>',
            '<span class="nbexec-time">TIME</span>',
        ),
        ("mean 3.2 s, not a table", "mean 3.2 s, not a table", "mean 3.2 s, not a table"),
    ],
)
def test_what_changes_between_runs_is_normalised(a, b, expected):
    assert testing.sanitize(a) == testing.sanitize(b) == expected


@pytest.mark.parametrize(
    "a, b",
    [
        ("total 45", "total 46"),
        ("nbexec tasks: 10 tasks - 10 success", "nbexec tasks: 10 tasks - 9 success, 1 failed"),
        ("tcp://127.0.0.1:1 answered 3", "tcp://127.0.0.1:1 answered 4"),
        ("hex deadbeef", "hex deadbeee"),
        ("0x10", "0x11"),
        ("sha 3f5a9c", "sha 3f5a9d"),
        ("port 8786", "port 8787"),
        ("version 1.2.3.4", "version 1.2.3.5"),
        ("inc-0", "inc-1"),
        ("[0, 1, 4, 9]", "[0, 1, 4, 8]"),
    ],
)
def test_everything_else_still_compares(a, b):
    assert testing.sanitize(a) != testing.sanitize(b)


def _stored_texts() -> list[str]:
    texts = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", ()):
                if "text" in output:
                    texts.append(output["text"])
                for mime, value in (output.get("data") or {}).items():
                    if isinstance(value, str) and mime.startswith("text/"):
                        texts.append(value)
    return texts


def test_no_rule_hides_a_whole_output():
    """Every match is a short token without spaces; outputs keep their words and numbers."""
    texts = _stored_texts() + [
        "nbexec tasks: 17 tasks - 17 success\n  load   8 success",
        json.dumps({"a": list(range(50))}),
        "a" * 200,
        "0123456789abcdef" * 8,
    ]
    assert len(texts) > 20
    for text in texts:
        for regex, _ in testing.sanitize_patterns():
            for match in re.finditer(regex, text):
                token = match.group().removeprefix("at ")
                duration = re.fullmatch(r"[\d.]+ (µs|ms|s|min)", token)  # a table's time
                assert len(token) <= 64 and (duration or not re.search(r"\s", token)), (
                    regex,
                    match.group(),
                )
        clean = testing.sanitize(text)
        assert clean.count("\n") == text.count("\n")
        assert len(text) < 40 or len(clean) >= len(text) // 2


def test_real_cluster_outputs_compare_equal_after_sanitizing():
    """Two real clusters, one inproc and tcp ones: reprs, addresses, links and keys."""

    def outputs(processes: bool) -> list[str]:
        kwargs = {"processes": processes, "n_workers": 1, "threads_per_worker": 1}
        kwargs["dashboard_address"] = "127.0.0.1:0"
        if processes:
            kwargs["host"] = "127.0.0.1"
        kwargs["silence_logs"] = logging.CRITICAL
        executor = nbexec.DaskExecutor(cluster_kwargs=kwargs)
        with executor.start():
            client = executor.client
            future = executor.submit(len, [1, 2], extra_context={"task_name": "n", "task_index": 0})
            executor.wait(future)
            return [
                client.scheduler.address,
                f"scheduler at {client.scheduler.address} and again {client.scheduler.address}",
                str(client.dashboard_link),
                f"<iframe src='{client.dashboard_link}'></iframe>",
                future.key,
                repr(future),
                repr(object()),
                str(uuid.uuid4()),
            ]

    first, second = outputs(False), outputs(False)
    assert first != second
    assert [testing.sanitize(t) for t in first] == [testing.sanitize(t) for t in second]
    assert testing.sanitize(first[0]) == "inproc://ADDR"
    tcp_a, tcp_b = outputs(True), outputs(True)
    assert tcp_a[0] != tcp_b[0]
    assert [testing.sanitize(t) for t in tcp_a] == [testing.sanitize(t) for t in tcp_b]
    assert testing.sanitize(tcp_a[0]) == "tcp://ADDR"
    assert testing.sanitize(tcp_a[4]) == "n-0-UUIDHEX"
    assert "UUIDHEX" in testing.sanitize(tcp_a[5])


@pytest.mark.slow
@pytest.mark.notebooks
def test_strict_nbval_passes_with_the_file_and_fails_without(tmp_path):
    """A notebook printing a fresh scheduler address and a Future: strict nbval, twice."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import logging, nbexec\n"
            "ex = nbexec.DaskExecutor(cluster_kwargs={'processes': False, 'n_workers': 1})\n"
            "with ex.start():\n"
            "    f = ex.submit(sum, [1, 2], extra_context={'task_name': 's', 'task_index': 0})\n"
            "    print(ex.client.scheduler.address, f.key, ex.wait(f))"
        ),
        nbformat.v4.new_code_cell("print(object())"),
    ]
    path = tmp_path / "addresses.ipynb"
    nbformat.write(nb, path)
    run = subprocess.run(
        [sys.executable, "-m", "nbexec", "run", str(path), "-o", str(path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr

    def nbval(*extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
        return subprocess.run(
            [*command, *extra], capture_output=True, text=True, cwd=tmp_path, timeout=180
        )

    without = nbval("--nbval")
    assert without.returncode == 1 and "2 failed" in without.stdout, without.stdout
    with_file = nbval(*testing.nbval_args())
    assert with_file.returncode == 0 and "2 passed" in with_file.stdout, with_file.stdout
