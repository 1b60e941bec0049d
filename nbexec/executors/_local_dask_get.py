"""``LocalDaskExecutor.dask_get``: a dask scheduler ``get`` that runs graphs on the executor's pool
(threads, processes) or in the calling thread (synchronous), inside its dask configuration."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from ..runtime._pickling import dumps

__all__ = ["dask_get"]


def dask_get(
    scheduler: str,
    pool: Any,
    config: AbstractContextManager,
    dsk: Mapping,
    keys: Any,
    /,
    **kwargs: Any,
) -> Any:
    """Run the graph ``dsk`` for ``keys`` with ``scheduler`` ("threads", "processes" or
    "synchronous") on ``pool`` (None for "synchronous") inside ``config`` (the executor's dask
    configuration); ``kwargs`` go to dask's ``get``. An interrupt in the main thread stops the
    pool's running work."""
    import dask

    with config:
        try:
            if scheduler == "threads":
                import dask.threaded

                return dask.threaded.get(dsk, keys, pool=pool, **kwargs)
            if scheduler == "processes":
                import dask.multiprocessing

                # Tracebacks name the user's file and line.
                kwargs.setdefault("func_dumps", dumps)
                return dask.multiprocessing.get(dsk, keys, pool=pool, **kwargs)
            return dask.get(dsk, keys, **kwargs)
        except KeyboardInterrupt:
            if pool is not None and threading.current_thread() is threading.main_thread():
                pool.interrupt_all()
            raise
