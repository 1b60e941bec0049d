"""Shared pytest configuration: the fast default, suite markers; Dask fixtures live in fixtures_dask.py.

A bare ``pytest`` runs the fast suite: tests marked with one of ``SUITES`` are deselected. ``pytest
--all`` runs everything (the README's and ``.ci/run``'s command); naming files, directories or node
ids (``pytest tests/reliability/test_leaks.py``) or giving ``-m`` runs exactly what was asked for.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).parent
pytest_plugins = ["fixtures_dask", "fixtures_modes"]

# Markers left out of a bare ``pytest`` (each is declared in pyproject.toml).
SUITES = ("slow", "browser", "reliability", "binder", "notebooks")
# Every test under these folders carries the folder's marker.
FOLDER_MARKERS = {"browser": "browser", "reliability": "reliability"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--all",
        action="store_true",
        default=False,
        help=f"run every test, also those marked {', '.join(SUITES)} (a bare pytest skips them)",
    )


def _fast_default(config: pytest.Config) -> bool:
    """True for a bare ``pytest``: no --all, no -m, no paths or node ids named."""
    return (
        not config.getoption("--all")
        and not config.getoption("markexpr")
        and config.args_source == pytest.Config.ArgsSource.TESTPATHS
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folders = item.path.parent.relative_to(TESTS).parts if TESTS in item.path.parents else ()
        for folder in folders:
            marker = FOLDER_MARKERS.get(folder)
            if marker and item.get_closest_marker(marker) is None:
                item.add_marker(marker)
    if not _fast_default(config):
        return
    keep, skipped = [], []
    for item in items:
        (skipped if any(item.get_closest_marker(m) for m in SUITES) else keep).append(item)
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = keep


@pytest.fixture
def clean_session(monkeypatch):
    """No session executor and no NBEXEC_EXECUTOR before and after the test."""
    from nbexec import session

    monkeypatch.delenv(session.ENV_VAR, raising=False)
    session.stop()
    yield
    session.stop()
