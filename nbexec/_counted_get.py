"""``.compute()`` on dask collections inside a run: counted in the run's table, run on its executor.

While a run is active, dask's ``scheduler`` config is a ``CountedGet`` of that run: each graph is
one row of the table (named after its first key), computed by the executor's own ``dask_get``
(local pools), its client's ``get`` (Dask), or dask's synchronous scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import Run

__all__ = ["CountedGet"]


class CountedGet:
    """The run's dask ``scheduler`` config value: a ``get`` that records the graph; pickles as None.

    Nannies copy dask's config into the worker processes they start (adaptive scaling, ``scale()``),
    and a run cannot pickle: the worker would fail to start and the tasks wait for ever.
    """

    __slots__ = ("_run",)

    def __init__(self, run: Run):
        self._run = run

    def __reduce__(self) -> tuple:
        return (type(None), ())

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        from dask.core import flatten
        from dask.utils import key_split

        tracker = self._run.tracker
        first = next(iter(flatten(keys)), "compute")
        task_id = tracker.add(key_split(first), str(first))
        tracker.running(task_id, where="dask scheduler")
        try:
            result = _base_get(self._run.executor)(dsk, keys, **kwargs)
        except KeyboardInterrupt:
            tracker.finish(task_id, "cancelled", "interrupted")
            raise
        except BaseException as exc:
            tracker.finish(task_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        tracker.finish(task_id, "success")
        return result


def _base_get(executor: Any) -> Callable:
    get = getattr(executor, "dask_get", None)
    if get is not None:
        return get
    client = getattr(executor, "client", None)
    if client is not None:
        return client.get
    from dask.local import get_sync

    return get_sync
