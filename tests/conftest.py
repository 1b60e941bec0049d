"""Shared pytest configuration: fixtures for real Dask clusters live in fixtures_dask.py."""

import pytest

pytest_plugins = ["fixtures_dask"]


@pytest.fixture
def clean_session(monkeypatch):
    """No session executor and no NBEXEC_EXECUTOR before and after the test."""
    from nbexec import session

    monkeypatch.delenv(session.ENV_VAR, raising=False)
    session.stop()
    yield
    session.stop()
