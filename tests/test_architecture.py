"""Structure the rest of the code relies on: reachable submodules, one parser per syntax."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import nbexec
from nbexec.executors import _tags
from nbexec.executors.base import Executor

_PACKAGE = Path(nbexec.__file__).parent


def test_run_function_and_run_submodule_are_both_reachable():
    # ``nbexec.run`` is the public function; the run module lives in the core folder, unshadowed.
    assert callable(nbexec.run) and not isinstance(nbexec.run, type(importlib))
    module = importlib.import_module("nbexec.core.run")
    assert module.__name__ == "nbexec.core.run" and hasattr(module, "Run")


def test_one_resource_tag_parser_for_tasks_and_the_dask_executor():
    from nbexec.executors.dask import parse_resources

    assert parse_resources is _tags.parse_resources
    assert parse_resources(["other", "DASK-RESOURCE:GPU=2"]) == {"GPU": 2.0}
    for tag, why in [
        ("dask-resource:GPU", "expected 'dask-resource:NAME=AMOUNT'"),
        ("dask-resource:GPU=x", "'x' is not a number"),
    ]:
        message = f"malformed resource tag {tag!r}: {why}"
        with pytest.raises(ValueError) as at_definition:
            nbexec.task(tags=[tag])(abs)
        with pytest.raises(ValueError) as at_submission:
            parse_resources([tag])
        assert str(at_definition.value) == str(at_submission.value) == message


def _echo(fn, **kwargs):
    return fn, kwargs


@pytest.mark.parametrize("mode", ["local", "threads", "sync"])
def test_fn_is_positional_only_so_tasks_may_take_fn_and_extra_keywords(mode):
    executor = nbexec.executor_for(mode)
    with executor.start():
        assert executor.wait(executor.submit(_echo, fn=1, self=2)) == (1, {"self": 2})
        assert executor.submit_future(_echo, fn=3).result(timeout=30) == (3, {})
        with nbexec.run(executor):
            assert nbexec.submit(_echo, fn=4).result() == (4, {})


@pytest.mark.parametrize("mode", ["threads", "dask"])
def test_not_started_is_a_runtime_error_and_still_prefects_value_error(mode):
    from nbexec.executors.base import NotStartedError

    executor = nbexec.executor_for(mode)
    with pytest.raises(NotStartedError, match="not been started") as info:
        executor.submit(abs, -1)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, ValueError)


def _executor_uses(path: Path) -> list[str]:
    """What ``path`` asks of executors other than the declared contract: attributes of an
    ``executor`` (``executor.x``, ``run.executor.x``) that ``Executor`` does not declare, and
    ``getattr``/``hasattr`` probes of an executor or of its futures (``client``, ``key``,
    ``status``: what kind of executor made them), and imports of the Dask executor's modules."""
    declared = set(dir(Executor))
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
            if name == "executor" and node.attr not in declared:
                found.append(f"{path.name}:{node.lineno}: executor.{node.attr}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
            "getattr",
            "hasattr",
        ):
            target = ast.unparse(node.args[0])
            if target.endswith("executor") or "efut" in target:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and "executors._dask" in (node.module or ""):
            found.append(f"{path.name}:{node.lineno}: import from {node.module}")
    return found


def test_the_run_layer_and_the_session_use_executors_only_through_the_declared_contract():
    # Probing an executor for a ``client`` or its futures for a ``key`` or ``status`` is how
    # special cases creep back in; each of these is a hook of ``Executor`` with a default instead.
    paths = [*sorted((_PACKAGE / "core").glob("*.py")), _PACKAGE / "session.py"]
    found = [use for path in paths for use in _executor_uses(path)]
    assert found == [], found


def test_only_the_task_runtime_names_its_per_thread_state():
    # pools and runs mark their threads through _nbexec_remote's functions (enter_task_thread,
    # set_output_sink), so the runtime may change how it keeps that state
    private = ("_nbexec_depth", "_nbexec_sink", "_nbexec_on_timeout", "_nbexec_final_attempt")
    found = [
        f"{path.relative_to(_PACKAGE)}:{n}: {name}"
        for path in sorted(_PACKAGE.rglob("*.py"))
        for n, text in enumerate(path.read_text().splitlines(), 1)
        for name in private
        if name in text
    ]
    assert found == [], found
