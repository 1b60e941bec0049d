"""``.compute()``/``.persist()`` on dask collections inside a run: run on its executor, counted by prefix.

While a run is active, dask's ``scheduler`` config is a ``CountedGet`` of that run (installed when
dask gets imported, if the run started before). Each graph's tasks are rows of the run's table by
task prefix (dask's ``key_split``, as dask's progress bars show them; data nodes are not tasks), run
by the executor's own ``dask_get`` (local pools, or the Dask client) or dask's synchronous scheduler.
Local modes report each task as it starts and ends; on Dask the run's ``LivePoll`` reads them from
the scheduler while the graph runs. A failed graph shows the task that raised as failed, naming its
key (tasks stopped with it are cancelled), and the cell gets the task's own exception.
``persist`` on an executor whose ``dask_get`` keeps results (Dask) leaves them on the workers.
Graphs the cell's code gives the executor's client itself (``client.submit``, ``map``,
``compute``, ``persist``), or dask's default client (the user's) under other executors, are rows
too, followed on the scheduler until their futures end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._dask_graph import fill_persisted, materialize, prefix_counts
from ._dask_live import LivePoll, Watch, error_text

if TYPE_CHECKING:
    from ._runtype import RunLike as Run

__all__ = ["CountedGet"]


class CountedGet:
    """The run's dask ``scheduler`` config value: a ``get`` (and ``persist``); pickles as None.

    Nannies copy dask's config into the worker processes they start (adaptive scaling, ``scale()``),
    and a run cannot pickle: the worker would fail to start and the tasks wait for ever.
    """

    __slots__ = ("_run", "_live", "_followed")

    def __init__(self, run: Run):
        self._run = run
        self._live = LivePoll()
        self._followed: set[_Rows] = set()  # client graphs whose futures have not all ended

    def __reduce__(self) -> tuple:
        return (type(None), ())

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        return self._get(dsk, keys, keep=False, **kwargs)

    def persist(self, collections: list, optimize_graph: bool = True, **kwargs: Any) -> list:
        """dask's scheduler ``persist`` protocol: dask's own persist, run through this run."""
        import dask

        keep = self._run.executor.dask_keeps_results
        get = _PersistGet(self, keep)
        return list(
            dask.persist(*collections, optimize_graph=optimize_graph, scheduler=get, **kwargs)
        )

    def attach(self) -> Callable[[], None]:
        """Count the graphs the run's code gives the executor's client itself, until the
        returned function is called (then rows still open end as interrupted)."""
        executor = self._run.executor
        stop = executor.count_client_calls(self._client_graph)

        def detach() -> None:
            if stop is not None:
                stop()
            for rows in list(self._followed):
                if rows.watch is not None:
                    self._live.unwatch(rows.watch)
                rows._end_open(KeyboardInterrupt())
            self._followed.clear()

        return detach

    def _client_graph(self, owner: Any, expr: Any, keys: list, futures: dict) -> None:
        """A graph the cell's code gave a client: its tasks are rows, followed as they run on
        the client of ``owner`` (the executor, or the user's default client)."""
        graph = materialize(expr, keys)
        rows = _Rows(self._run.tracker, prefix_counts(graph))
        if rows.ids:
            self._followed.add(rows)
            rows.then = self._followed.discard
            rows.follow(owner, self._live, graph, list(futures.values()), keep=True)

    def _get(self, dsk: Any, keys: Any, keep: bool, **kwargs: Any) -> Any:
        executor = self._run.executor
        keeps = executor.dask_keeps_results
        graph = fill_persisted(
            materialize(dsk, keys), keys, executor.dask_client if keeps else None, dsk
        )
        rows = _Rows(self._run.tracker, prefix_counts(graph))
        if keeps:
            return rows.remote(executor, self._live, graph, keys, keep, kwargs)
        return rows.local(executor.dask_get, graph, keys, kwargs)


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
        self.watch: Watch | None = None
        self.then: Callable[[_Rows], None] | None = None  # called once the graph's futures ended
        self.ids: dict = {}
        for name, keys in by_prefix.items():
            self.ids.update(zip(keys, tracker.add_many(name, len(keys))))

    def _end_open(self, error: BaseException, culprit_known: bool = False) -> None:
        """After a failure: tasks not ended were cancelled with it.

        Without ``culprit_known`` (the task that raised is not known), started tasks fail with it.
        """
        interrupted = isinstance(error, KeyboardInterrupt)
        message = error_text(error)
        tracker = self.tracker
        for task_id in self.ids.values():
            state = tracker.state(task_id)
            if state in ("success", "failed", "cancelled"):
                continue
            if interrupted:
                tracker.finish(task_id, "cancelled", "interrupted")
            elif state == "running":
                if culprit_known:
                    tracker.finish(task_id, "cancelled", f"stopped: another task failed: {message}")
                else:
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
            key = _failed_key(exc)
            if key in ids:
                tracker.finish(ids[key], "failed", error_text(exc, key))
            self._end_open(exc, key in ids)
            raise
        for task_id in ids.values():  # e.g. tasks a scheduler ran without callbacks
            tracker.finish(task_id, "success")
        return result

    def remote(
        self, executor: Any, live: LivePoll, graph: dict, keys: Any, keep: bool, kwargs: dict
    ) -> Any:
        """Run on a cluster: futures for ``keys``; gathered unless ``keep`` (persist).

        ``live`` reads the tasks' states from the scheduler until the graph ends.
        """
        packed = executor.dask_get(graph, keys, sync=False, **kwargs)
        futures = _flat_futures(packed)
        watch = self.follow(executor, live, graph, futures, keep)
        if keep:
            return packed
        try:
            result = executor.wait(packed)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                executor.interrupt(futures)
            self._settle(executor, live, watch, futures, exc)
            raise
        self._settle(executor, live, watch, futures)
        return result

    def follow(
        self, executor: Any, live: LivePoll, graph: dict, futures: list, keep: bool
    ) -> Watch:
        """Move the rows with the scheduler's states while ``futures`` run; with ``keep``, record
        the outcome once they all ended (else the caller waits and settles)."""
        watch = self.watch = live.watch(executor.dask_client, self.tracker, self.ids, graph)
        if not keep:
            return watch
        pending = [len(futures)]

        def on_done(_: Any) -> None:
            pending[0] -= 1
            if pending[0] == 0:
                self._settle(executor, live, watch, futures)

        for future in futures:
            future.add_done_callback(on_done)
        if not futures:
            self._settle(executor, live, watch, futures)
        return watch

    def _settle(
        self,
        executor: Any,
        live: LivePoll,
        watch: Watch,
        futures: list,
        error: BaseException | None = None,
    ) -> None:
        """Record the graph's outcome once its futures ended (from the scheduler's task states)."""
        live.unwatch(watch)
        then, self.then = self.then, None
        if then is not None:
            then(self)
        status = executor.future_status
        if error is None:
            error = next((f.exception() for f in futures if status(f) == "error"), None)
        if error is None and any(status(f) == "cancelled" for f in futures):
            states = executor.dask_task_states(list(watch.open))  # e.g. released by the user
            for key in list(watch.open):
                if states.get(key) == "memory":
                    self.tracker.finish(self.ids[key], "success")
                else:
                    self.tracker.finish(self.ids[key], "cancelled", "cancelled")
            return
        if error is None:
            for task_id in self.ids.values():
                self.tracker.finish(task_id, "success")
            return
        culprit = False
        if not isinstance(error, KeyboardInterrupt):
            states = executor.dask_task_states(list(watch.open))
            erred = [key for key, state in states.items() if state == "erred"]
            for key in erred:  # the scheduler blames these; one is the cell's exception
                if len(erred) == 1:
                    watch.failed[key] = text = error_text(error, key)
                    watch.open.discard(key)
                    self.tracker.finish(self.ids[key], "failed", text)
                else:
                    watch.fail(key)
            for key, state in states.items():
                if state == "memory":
                    self.tracker.finish(self.ids[key], "success")
            culprit = bool(watch.failed)
        self._end_open(error, culprit)


def _failed_key(error: BaseException) -> Any:
    """The key of the task that raised ``error`` in dask's local scheduler, or None.

    The frames stay on the exception's traceback: dask's ``execute_task`` (the task's key) when the
    exception comes from this process, else ``get_async``'s loop over finished tasks, which
    re-raises a failed task's exception while its ``key`` and ``failed`` name it.
    """
    found = None
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        if code.co_filename.endswith("local.py") and code.co_name in ("get_async", "execute_task"):
            try:
                names = frame.f_locals
                if code.co_name == "execute_task" and "key" in names:  # not a rebuilt frame
                    return names["key"]
                if names.get("failed") is True:
                    found = names.get("key")
            except Exception:  # noqa: BLE001 - an odd frame: not known
                pass
        tb = tb.tb_next
    return found


def _flat_futures(packed: Any) -> list:
    from dask.core import flatten

    return [f for f in flatten(packed, container=(list, tuple)) if hasattr(f, "add_done_callback")]
