"""nbexec: run notebook work on the executor you pick, and watch it live under the cell."""

from __future__ import annotations

from .executors import Executor, LocalExecutor

__version__ = "0.1.0"
