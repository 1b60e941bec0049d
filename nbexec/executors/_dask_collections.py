"""DaskExecutor's support for dask collections: the scheduler ``get``, task states, the default client."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
import distributed


class DaskCollections:
    """``dask_get``, ``dask_task_states`` and ``as_dask_default`` for ``DaskExecutor`` (a mixin)."""

    logger: logging.Logger

    def _require_client(self) -> distributed.Client:
        raise NotImplementedError

    #: ``dask_get(..., sync=False)`` returns futures whose data stays on the workers.
    dask_keeps_results = True

    def dask_get(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        """A dask scheduler ``get`` on this executor's client (``sync=False``: futures)."""
        return self._require_client().get(dsk, keys, **kwargs)

    def dask_task_states(self, keys: list) -> dict:
        """The scheduler's state of each of ``keys`` it still knows ("erred" only where the error
        arose; its dependents are "erred-upstream")."""

        def states(dask_scheduler: Any, keys: list) -> dict:
            out = {}
            for key in keys:
                ts = dask_scheduler.tasks.get(key)
                if ts is None:
                    continue
                state = ts.state
                if state == "erred" and ts.exception_blame is not ts:
                    state = "erred-upstream"
                out[key] = state
            return out

        try:
            return self._require_client().run_on_scheduler(states, keys=keys)
        except Exception as exc:  # noqa: BLE001 - the table then shows them as not run
            self.logger.debug("Could not read task states: %r", exc)
            return {}

    @contextmanager
    def as_dask_default(self) -> Iterator[None]:
        """Make this executor's client dask's default, as ``Client()`` does, until the block ends.

        A client the user made is the default already and stays so.
        """
        from distributed.client import _del_global_client, _get_global_client, _set_global_client

        client = self._require_client()
        if _get_global_client() is client:
            yield
            return
        _set_global_client(client)
        try:
            with dask.config.set(scheduler="dask.distributed"):
                yield
        finally:
            _del_global_client(client)
