"""Shared pytest configuration: fixtures for real Dask clusters live in fixtures_dask.py."""

pytest_plugins = ["fixtures_dask"]
