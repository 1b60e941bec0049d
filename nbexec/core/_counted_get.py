"""``.compute()``/``.persist()`` on dask collections inside a run: run on its executor, counted by prefix.

While a run is active, dask's ``scheduler`` config is a ``CountedGet`` of that run (installed when
dask gets imported, if the run started before). Each graph's tasks are rows of the run's table by
task prefix (dask's ``key_split``, as dask's progress bars show them; data nodes are not tasks), run
by the executor's own ``dask_get`` (local pools, or the Dask client) or dask's synchronous scheduler.
Local modes report each task as it starts and ends; on Dask the counts come when the graph ends.
``persist`` on an executor whose ``dask_get`` keeps results (Dask) leaves them on the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._dask_graph import fill_persisted, materialize, prefix_counts

if TYPE_CHECKING:
    from .run import Run

__all__ = ["CountedGet"]


class CountedGet:
    """The run's dask ``scheduler`` config value: a ``get`` (and ``persist``); pickles as None.

    Nannies copy dask's config into the worker processes they start (adaptive scaling, ``scale()``),
    and a run cannot pickle: the worker would fail to start and the tasks wait for ever.
    """

    __slots__ = ("_run",)

    def __init__(self, run: Run):
        self._run = run

    def __reduce__(self) -> tuple:
        return (type(None), ())

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        return self._get(dsk, keys, keep=False, **kwargs)

    def persist(self, collections: list, optimize_graph: bool = True, **kwargs: Any) -> list:
        """dask's scheduler ``persist`` protocol: dask's own persist, run through this run."""
        import dask

        keep = getattr(self._run.executor, "dask_keeps_results", False)
        get = _PersistGet(self, keep)
        return list(
            dask.persist(*collections, optimize_graph=optimize_graph, scheduler=get, **kwargs)
        )

    def _get(self, dsk: Any, keys: Any, keep: bool, **kwargs: Any) -> Any:
        executor = self._run.executor
        keeps = getattr(executor, "dask_keeps_results", False)
        graph = fill_persisted(
            materialize(dsk, keys), keys, getattr(executor, "client", None) if keeps else None, dsk
        )
        rows = _Rows(self._run.tracker, prefix_counts(graph))
        if keeps:
            return rows.remote(executor, graph, keys, keep, kwargs)
        return rows.local(_base_get(executor), graph, keys, kwargs)


class _PersistGet:
    """The ``get`` CountedGet.persist hands to ``dask.persist`` (no ``persist`` of its own)."""

    __slots__ = ("_counted", "_keep")

    def __init__(self, counted: CountedGet, keep: bool):
        self._counted, self._keep = counted, keep

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        return self._counted._get(dsk, keys, keep=self._keep, **kwargs)


class _Rows:
    """One graph's tasks in the run's tracker: ids by key, and how each run path reports them."""

    def __init__(self, tracker: Any, by_prefix: dict[str, list]):
        self.tracker = tracker
        self.ids: dict = {}
        for name, keys in by_prefix.items():
            self.ids.update(zip(keys, tracker.add_many(name, len(keys))))

    def _end_open(self, error: BaseException) -> None:
        """After a failure: started tasks failed with it, the others were cancelled."""
        interrupted = isinstance(error, KeyboardInterrupt)
        message = f"{type(error).__name__}: {error}"
        tracker = self.tracker
        for task_id in self.ids.values():
            state = tracker.state(task_id)
            if state in ("success", "failed", "cancelled"):
                continue
            if interrupted:
                tracker.finish(task_id, "cancelled", "interrupted")
            elif state == "running":
                tracker.finish(task_id, "failed", message)
            else:
                tracker.finish(task_id, "cancelled", f"upstream failed: {message}")

    def local(self, get: Callable, graph: dict, keys: Any, kwargs: dict) -> Any:
        """Run on a local scheduler ``get``, reporting each task through dask's callbacks."""
        from dask.callbacks import Callback

        tracker, ids = self.tracker, self.ids

        def pretask(key: Any, dsk: Any, state: Any) -> None:
            task_id = ids.get(key)
            if task_id is not None:
                tracker.running(task_id)

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            task_id = ids.get(key)
            if task_id is not None:
                tracker.finish(task_id, "success")

        given = kwargs.pop("callbacks", None)
        callbacks = [*(given if given is not None else Callback.active)]
        callbacks.append(Callback(pretask=pretask, posttask=posttask)._callback)
        try:
            result = get(graph, keys, callbacks=callbacks, **kwargs)
        except BaseException as exc:
            self._end_open(exc)
            raise
        for task_id in ids.values():  # e.g. tasks a scheduler ran without callbacks
            tracker.finish(task_id, "success")
        return result

    def remote(self, executor: Any, graph: dict, keys: Any, keep: bool, kwargs: dict) -> Any:
        """Run on a cluster: futures for ``keys``; gathered unless ``keep`` (persist)."""
        packed = executor.dask_get(graph, keys, sync=False, **kwargs)
        futures = _flat_futures(packed)
        pending = [len(futures)]

        def on_done(_: Any) -> None:
            pending[0] -= 1
            if pending[0] == 0:
                self._settle(executor, futures)

        if keep:
            for future in futures:
                future.add_done_callback(on_done)
            if not futures:
                self._settle(executor, futures)
            return packed
        try:
            result = executor.wait(packed)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                executor.interrupt(futures)
            self._settle(executor, futures, exc)
            raise
        self._settle(executor, futures)
        return result

    def _settle(self, executor: Any, futures: list, error: BaseException | None = None) -> None:
        """Record the graph's outcome once its futures ended (from the scheduler's task states)."""
        if error is None:
            error = next((f.exception() for f in futures if f.status == "error"), None)
        if error is None:
            for task_id in self.ids.values():
                self.tracker.finish(task_id, "success")
            return
        if not isinstance(error, KeyboardInterrupt):
            states = executor.dask_task_states(list(self.ids))
            message = f"{type(error).__name__}: {error}"
            for key, state in states.items():
                task_id = self.ids[key]
                if state == "memory" or state == "released-done":
                    self.tracker.finish(task_id, "success")
                elif state == "erred":
                    self.tracker.finish(task_id, "failed", message)
        self._end_open(error)


def _flat_futures(packed: Any) -> list:
    from dask.core import flatten

    return [f for f in flatten(packed, container=(list, tuple)) if hasattr(f, "add_done_callback")]


def _base_get(executor: Any) -> Callable:
    get = getattr(executor, "dask_get", None)
    if get is not None:
        return get
    from dask.local import get_sync

    return get_sync
