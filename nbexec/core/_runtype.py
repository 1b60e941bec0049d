"""What the modules under ``run`` need of a run: the ``RunLike`` protocol, for type hints only.

``futures``, ``_counted_get``, ``history`` and ``_timeouts`` sit below ``run`` in the run layer, so they name a run
through this protocol instead of importing ``Run`` (``run.Run`` satisfies it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .snapshot import Snapshot
    from .tracking import Tracker

__all__ = ["RunLike"]


class RunLike(Protocol):
    """A run as the futures, dask routing and the run registry use it."""

    executor: Any
    tracker: Tracker
    futures: list[Any]  # its TaskFutures (futures.py sits above this module)
    cell: str | None
    retry_record: Any  # history.RetryRecord (history sits above this module)
    _lazy: bool
    _emit: Callable | None
    _quiet: bool

    def __init__(self, executor: Any) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...

    @property
    def active(self) -> bool: ...

    def _submit(
        self, fn: Callable, name: str, args: tuple, kwargs: dict, *options: Any, **named: Any
    ) -> Any: ...

    def resolve(self, obj: Any) -> Any: ...

    def _drain(self) -> None: ...

    def _on_done(self, future: Any, efut: Any) -> None: ...

    def resubmit(self, future: Any, call: tuple) -> Any: ...

    def light_copy(self, retry_record: Any) -> Any: ...

    def interrupt(self) -> None: ...

    def cancel(self, futures: Iterable[Any] | None = None) -> int: ...

    def snapshot(self) -> Snapshot: ...
