"""The task wrapper every executor runs: ``TaskCall`` (one task) and ``MappedTaskCall`` (each
element of a map) report, retry, time out and capture output around the task's own function;
``AsyncCall`` runs an ``async def`` task."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ._context import _DEPTH_ATTR, _FINAL_ATTR, _key_cancelled, where_of
from ._events import _PartSender
from ._exits import contain
from ._output import _SINK_ATTR, LiveOutput, OutputBuffer, install_output_tee
from ._timeouts import call_with_timeout


class AsyncCall:
    """Run an ``async def`` function's coroutine to its end (a task's body, in any mode).

    In a thread without a running event loop (pool threads, Dask workers, process children) it
    uses ``asyncio.run``; where a loop already runs in this thread (a kernel running ``local``
    tasks) the coroutine runs on a fresh loop in a helper thread.
    """

    __slots__ = ("fn", "__name__", "__qualname__")

    def __init__(self, fn: Callable):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "task")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)

    def __reduce__(self):
        return (AsyncCall, (self.fn,))

    def __call__(self, *args, **kwargs):
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.fn(*args, **kwargs))
        box: dict = {}

        def main() -> None:
            try:
                box["value"] = asyncio.run(self.fn(*args, **kwargs))
            except BaseException as exc:
                box["error"] = exc

        helper = threading.Thread(target=main, name="nbexec-async-task")
        helper.start()
        helper.join()
        if "error" in box:
            raise box["error"]
        return box["value"]


class TaskCall:
    """Call ``fn`` reporting "running" (and "retrying") through ``emit``, retrying with a delay.

    What the call prints is captured (``LiveOutput``) and sent while it runs as "output" events
    with parts (``{"at", "parts"}``, at most one per ``PART_DELAY`` s), then once whole at its
    end (``{"text", "n"}`` plus the last parts); on the last failure it also travels on the
    exception (``_nbexec_output``). ``timeout``: seconds an
    attempt may run before it fails with ``TimeoutError`` (retried like any failure). ``done``:
    attempts made before this call, when the kernel submitted the task again.
    """

    __slots__ = ("fn", "task_id", "emit", "retries", "retry_delay", "timeout", "done")

    def __init__(self, fn, task_id, emit, retries=0, retry_delay=0.0, timeout=None, done=0):
        self.fn = fn
        self.task_id = task_id
        self.emit = emit
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.done = done  # attempts made before this call (the kernel resubmitted the task)

    def __reduce__(self):
        return (TaskCall, (self.fn, self.task_id, self.emit, self.retries, self.retry_delay,
                           self.timeout, self.done))  # fmt: skip

    def __call__(self, *args, **kwargs):
        emit = self.emit
        attempt = self.done
        thread = threading.current_thread()
        setattr(thread, _DEPTH_ATTR, getattr(thread, _DEPTH_ATTR, 0) + 1)
        outer = getattr(thread, _SINK_ATTR, None)
        out = OutputBuffer() if emit is None else LiveOutput(_PartSender(emit, self.task_id))
        setattr(thread, _SINK_ATTR, out)
        install_output_tee()
        try:
            while True:
                attempt += 1
                if emit is not None:
                    emit(
                        self.task_id,
                        "running",
                        {"t": time.time(), "where": where_of(thread), "attempt": attempt},
                    )
                # Only a last attempt may be failed at once by the timeout (the pool's hook).
                setattr(thread, _FINAL_ATTR, attempt > self.retries)
                try:
                    if self.timeout:
                        return call_with_timeout(self.fn, args, kwargs, self.timeout)
                    return self.fn(*args, **kwargs)
                except Exception as exc:
                    if attempt > self.retries or _key_cancelled():
                        text = out.text()
                        if text:
                            try:
                                exc._nbexec_output = text  # type: ignore[attr-defined]
                            except Exception:  # noqa: BLE001 - an exception without __dict__
                                pass
                        raise
                    if emit is not None:
                        emit(self.task_id, "retrying", {"t": time.time(), "attempt": attempt,
                                                        "error": f"{type(exc).__name__}: {exc}"[:300]})  # fmt: skip
                    if self.retry_delay:
                        time.sleep(self.retry_delay)
                except BaseException as exc:  # not an Exception: never retried
                    failure = contain(exc)
                    if failure is exc:
                        raise
                    raise failure from exc
        finally:
            setattr(thread, _SINK_ATTR, outer)
            setattr(thread, _FINAL_ATTR, True)
            setattr(thread, _DEPTH_ATTR, getattr(thread, _DEPTH_ATTR) - 1)
            if emit is not None and out.parts:
                info: dict = {"text": out.text()}
                last = out.take_parts()  # type: ignore[attr-defined]
                if last is not None:
                    info["at"], info["parts"] = last
                info["n"] = out.sent  # type: ignore[attr-defined]
                emit(self.task_id, "output", info)


class MappedTaskCall(TaskCall):
    """A TaskCall shared by every element of a map: the task id comes as the first argument."""

    __slots__ = ()

    def __init__(self, fn, emit, retries=0, retry_delay=0.0, timeout=None):
        super().__init__(fn, None, emit, retries, retry_delay, timeout)

    def __reduce__(self):
        return (MappedTaskCall, (self.fn, self.emit, self.retries, self.retry_delay, self.timeout))

    def __call__(self, task_id, *args):
        return TaskCall(self.fn, task_id, self.emit, self.retries, self.retry_delay,
                        self.timeout)(*args)  # fmt: skip
