"""nbexec's code that runs inside tasks, wherever they run: shipped ONCE per process, not per task.

A top-level module of the nbexec distribution (``py-modules`` in pyproject.toml), so task wrappers
pickle BY REFERENCE (``_nbexec_remote.TaskCall``): a task carries only its own data (task id,
function, arguments), never nbexec's code. Where nbexec is installed (the kernel, process-pool
children, LocalCluster workers) it is imported normally. On a Dask scheduler and workers that lack
it, ``DaskExecutor.start()`` installs this file's source once per process (a scheduler plugin and
a worker plugin, so workers that join later get it too): see ``nbexec.executors._dask_remote``.

It may import only the standard library at module level (``distributed`` is looked up lazily):
process-pool children import it without loading distributed. ``nbexec.runtime._taskcall`` re-exports
the task wrappers; ``nbexec.executors.dask`` uses the Dask helpers.

Per-thread state lives on the Thread object and per-worker state on the ``Worker`` object
(``_nbexec_stopped``, ``_nbexec_events``): two copies of this module in one process (e.g. a
reinstall on a long-lived worker) then still share it.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "in_task_body", "call_in_task_body", "where_of", "TaskCall", "MappedTaskCall", "TaskNotStarted", "TaskInterrupted",
    "run_task", "MapCall", "ByValue", "Emitter", "stop_token", "interrupt_keys", "OutputBuffer",
    "install_output_tee", "call_quietly", "TaskTimeout", "call_with_timeout",
    "call_with_timeout_of", "TaskExit", "contain", "AsyncCall", "LiveOutput", "PART_DELAY",
]  # fmt: skip

# --- the task wrapper (every executor) ------------------------------------------------------------


# Thread attributes: how many task bodies this thread is inside; whether its current attempt is
# the last one (only a last attempt may be failed at once by the timeout).
_DEPTH_ATTR = "_nbexec_depth"
_FINAL_ATTR = "_nbexec_final_attempt"


def in_task_body() -> bool:
    """True while this thread executes a task's own code (nested task calls are plain calls)."""
    return getattr(threading.current_thread(), _DEPTH_ATTR, 0) > 0


class TaskExit(Exception):
    """The task's own code raised a BaseException that is not an Exception (``SystemExit``,
    ``KeyboardInterrupt``, ``GeneratorExit``...): the task fails with it as ``__cause__`` (also
    ``.exc``), and the worker running it goes on (Dask kills a worker on SystemExit)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc
        self.__cause__ = exc

    def __str__(self) -> str:
        text = str(self.exc)
        return f"the task raised {type(self.exc).__name__}" + (f": {text}" if text else "")


class TaskInterrupted(BaseException):
    """Raised inside a running task that nbexec interrupts (``interrupt``, a cancelled run, a
    kernel interrupt, leaving ``start()``), in a pool thread or a Dask worker thread.

    A BaseException, so ``except Exception`` in task code does not swallow it and a retrying
    task is not retried; not a KeyboardInterrupt, which distributed lets through to close the
    worker (any other BaseException fails only the task)."""


def _raised_by_code(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a ``raise`` statement (not from a signal between two lines)."""
    tb = exc.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    try:
        import dis

        return dis.opname[tb.tb_frame.f_code.co_code[tb.tb_lasti]] in ("RAISE_VARARGS", "RERAISE")
    except (IndexError, AttributeError):  # pragma: no cover - another interpreter
        return True


def contain(exc: BaseException) -> BaseException:
    """``exc`` as the task's failure: a ``TaskExit`` for a BaseException raised by the task's own
    code; ``exc`` itself for an Exception or an interrupt (nbexec's own, or a kernel interrupt
    reaching the main thread), which must stop the work rather than fail one task."""
    if isinstance(exc, Exception):
        return exc
    # By name too: a worker may hold two copies of this module (installed and imported).
    if type(exc).__name__ in ("TaskInterrupted", "TaskTimeout"):
        return exc
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        if not _raised_by_code(exc):
            return exc  # SIGINT
    return TaskExit(exc)


def call_in_task_body(fn: Callable, args: tuple, kwargs: dict) -> Any:
    """``fn(*args, **kwargs)`` with this thread counted as inside a task body (see ``in_task_body``).

    A BaseException the task raises itself comes out as ``TaskExit`` (see ``contain``).
    """
    thread = threading.current_thread()
    setattr(thread, _DEPTH_ATTR, getattr(thread, _DEPTH_ATTR, 0) + 1)
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        failure = contain(exc)
        if failure is exc:
            raise
        raise failure from exc
    finally:
        setattr(thread, _DEPTH_ATTR, getattr(thread, _DEPTH_ATTR) - 1)


def where_of(thread: threading.Thread) -> str:
    """Where ``thread`` runs tasks: ``pid N`` (main thread), ``pid N <thread name>``, or the Dask
    worker's address; cached on the thread."""
    where = getattr(thread, "_nbexec_where", None)
    if where is None:
        where = (
            f"pid {os.getpid()}"
            if thread is threading.main_thread()
            else f"pid {os.getpid()} {thread.name}"
        )
        worker = _worker_or_none()
        if worker is not None:
            where = worker.address
        thread._nbexec_where = where  # type: ignore[attr-defined]
    return where


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


def _key_cancelled() -> bool:
    """Whether this thread runs a Dask task whose key was cancelled (an attempt the kernel
    stopped after its timeout and submitted again: this one must not retry by itself)."""
    worker = _worker_or_none()
    if worker is None:
        return False
    try:
        key = worker.active_threads.get(threading.get_ident())
        ts = worker.state.tasks.get(key) if key is not None else None
    except Exception:  # noqa: BLE001 - distributed changed: retry as usual
        return False
    return ts is not None and ts.state == "cancelled"


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


# --- per-task output ------------------------------------------------------------------------------

#: The thread attribute naming where this thread's task output goes: an object with
#: ``write_output(text)``, or None.
_SINK_ATTR = "_nbexec_sink"
#: Characters of output kept per task (the last ones).
MAX_OUTPUT = 100_000


class OutputBuffer:
    """Collects what one task prints (the last ``MAX_OUTPUT`` characters)."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write_output(self, text: str) -> None:
        parts = self.parts
        parts.append(text)
        if len(parts) > 256 or len(text) > MAX_OUTPUT:
            parts[:] = [keep_tail("".join(parts))]

    def text(self) -> str:
        return keep_tail("".join(self.parts))

    def take(self) -> str | None:
        """The text so far (None if nothing was printed); empties the buffer."""
        if not self.parts:
            return None
        text = keep_tail("".join(self.parts))
        self.parts = []
        return text


#: Seconds: what a running task prints is sent on in parts at most this often.
PART_DELAY = 0.1


class LiveOutput(OutputBuffer):
    """An ``OutputBuffer`` that also passes on what the task prints while it runs: the text
    written since the last part, by stream (``[[stream, text], ...]``), and its offset in all the
    task printed, through ``send(at, parts)``. One process-wide thread sends the parts that are
    due ``PART_DELAY`` s after their first write: a print costs no message of its own.

    A write only appends (atomic under the GIL) and marks the buffer due; ``take_parts`` takes
    a prefix of what was appended, under one lock for all takers (the sending thread, the task's
    own thread at its end)."""

    __slots__ = ("send", "pending", "sent", "due")

    def __init__(self, send: Callable[[int, list], None]) -> None:
        self.parts: list[str] = []
        self.send = send
        self.pending: list[tuple[str | None, str]] = []  # (stream, text) not passed on yet
        self.sent = 0  # characters passed on (or taken by ``take_parts``) so far
        self.due = False  # the sending thread will look at this buffer

    def write_output(self, text: str) -> None:
        parts = self.parts
        parts.append(text)
        if len(parts) > 256 or len(text) > MAX_OUTPUT:
            parts[:] = [keep_tail("".join(parts))]
        self.pending.append((getattr(threading.current_thread(), STREAM_ATTR, None), text))
        if not self.due:  # read after the append: a take that cleared it takes this text too
            self.due = True
            _parts_sender().schedule(self)

    def take_parts(self) -> tuple[int, list] | None:
        """``(offset, parts)`` of the text not passed on yet (now counted as passed), or None."""
        with _TAKE_LOCK:
            self.due = False
            pending = self.pending
            n = len(pending)
            if not n:
                return None
            taken = pending[:n]
            del pending[:n]
            parts: list[list] = []
            size = 0
            for stream, text in taken:
                stream = stream or "stdout"
                size += len(text)
                if parts and parts[-1][0] == stream:
                    parts[-1].append(text)
                else:
                    parts.append([stream, text])
            at = self.sent
            self.sent = at + size
        return at, [[part[0], "".join(part[1:])] for part in parts]

    def flush(self) -> None:
        """Pass on what was printed since the last part (from the sending thread)."""
        taken = self.take_parts()
        if taken is not None:
            try:
                self.send(*taken)
            except Exception:  # noqa: BLE001 - passing output on must never break a task
                pass


_TAKE_LOCK = threading.Lock()


class _PartSender:
    """``send(at, parts)`` of a TaskCall's ``LiveOutput``: an "output" event of its task.

    Called from the sending thread, where no Dask worker is current: on a worker the event
    joins the batch of the worker that runs the task (found when the task started)."""

    __slots__ = ("emit", "task_id", "worker")

    def __init__(self, emit: Callable, task_id: Any) -> None:
        self.emit = emit
        self.task_id = task_id
        self.worker = _worker_or_none() if type(emit).__name__ == "Emitter" else None

    def __call__(self, at: int, parts: list) -> None:
        info = {"at": at, "parts": parts}
        if self.worker is not None:
            emit: Any = self.emit  # an Emitter (checked when the task started)
            _buffer_event(self.worker, emit.topic, [emit.channel, self.task_id, "output", info])
        else:
            self.emit(self.task_id, "output", info)


class _Parts:
    """The thread that passes on due ``LiveOutput`` parts, ``PART_DELAY`` s after they are due;
    it waits, not polls, while nothing is due. ``schedule`` takes no lock: list appends and
    prefix deletes are atomic under the GIL, and the loop looks at the list again after it
    cleared its event."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._due: list[LiveOutput] = []
        self._wake = threading.Event()
        threading.Thread(target=self._loop, name="nbexec-output", daemon=True).start()

    def schedule(self, out: LiveOutput) -> None:
        self._due.append(out)
        if not self._wake.is_set():
            self._wake.set()

    def _loop(self) -> None:
        due, wake = self._due, self._wake
        while True:
            if not due:
                wake.clear()
                if not due:
                    wake.wait()
            time.sleep(PART_DELAY)
            n = len(due)
            taken = due[:n]
            del due[:n]
            for out in taken:
                out.flush()


_PARTS: _Parts | None = None


def _parts_sender() -> _Parts:
    global _PARTS
    parts = _PARTS
    if parts is None or parts.pid != os.getpid():  # none yet, or inherited through a fork
        with _WATCHDOG_LOCK:
            if _PARTS is None or _PARTS.pid != os.getpid():
                _PARTS = _Parts()
            parts = _PARTS
    return parts


def keep_tail(text: str, limit: int = MAX_OUTPUT) -> str:
    """``text`` cut to its last ``limit`` characters, saying that earlier output was cut."""
    if len(text) <= limit:
        return text
    return "[... earlier output cut ...]\n" + text[-limit:]


#: The thread attribute naming the stream ("stdout", "stderr") of the text its task's sink is
#: being given now: where that text is shown again at once (a background cell's echo), it keeps
#: its stream.
STREAM_ATTR = "_nbexec_stream"


class OutputTee:
    """Stands in for ``sys.stdout``/``sys.stderr``: every write goes to the stream as before, and
    a copy goes to the sink of the task this thread runs (``_nbexec_sink``), if any."""

    _nbexec_tee = True

    def __init__(self, stream: Any, name: str = "stdout") -> None:
        self._stream = stream
        self._name = name

    def write(self, text: Any) -> Any:
        thread = threading.current_thread()
        sink = getattr(thread, _SINK_ATTR, None)
        if sink is not None and text:
            setattr(thread, STREAM_ATTR, self._name)  # what an echo of this text may ask
            try:
                sink.write_output(text if type(text) is str else str(text))
            except Exception:  # noqa: BLE001 - capturing must never break printing
                pass
            finally:
                setattr(thread, STREAM_ATTR, None)
        if getattr(thread, _QUIET_ATTR, False):  # kept for the task only (``call_quietly``)
            return len(text)
        return self._stream.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


#: The thread attribute set while a task runs whose printing is only kept (``call_quietly``).
_QUIET_ATTR = "_nbexec_quiet"


def call_quietly(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` whose printing is kept for its task but not written to this
    process's streams: where the task ran is not where its output belongs (a background cell's
    tasks; the kernel shows what they printed under that cell)."""
    thread = threading.current_thread()
    outer = getattr(thread, _QUIET_ATTR, False)
    setattr(thread, _QUIET_ATTR, True)
    try:
        return fn(*args, **kwargs)
    finally:
        setattr(thread, _QUIET_ATTR, outer)


def install_output_tee() -> None:
    """Put an ``OutputTee`` in front of ``sys.stdout`` and ``sys.stderr`` (once; cheap after)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and type(stream).__dict__.get("_nbexec_tee") is None:
            setattr(sys, name, OutputTee(stream, name))


# --- timeouts -------------------------------------------------------------------------------------


class TaskTimeout(BaseException):
    """Raised inside a task that ran past its timeout (a BaseException: ``except Exception`` in
    task code does not swallow it); the task wrapper turns it into ``TimeoutError``."""


def call_with_timeout(fn: Callable, args: tuple, kwargs: dict, timeout: float) -> Any:
    """``fn(*args, **kwargs)``, stopped with ``TimeoutError`` once it ran ``timeout`` seconds.

    In a main thread whose SIGALRM is free (process-pool children, the kernel) a timer signal
    stops it, even inside ``time.sleep``; elsewhere (pool threads, Dask worker threads) the
    watchdog raises in the thread at its next Python line.
    """
    thread = threading.current_thread()
    alarm = (
        thread is threading.main_thread()
        and hasattr(signal, "setitimer")
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    )
    entry = None
    previous = None
    try:
        try:
            if alarm:
                previous = signal.signal(signal.SIGALRM, _on_alarm)
                signal.setitimer(signal.ITIMER_REAL, timeout)
            else:
                entry = _watchdog().arm(thread.ident, timeout)
            return fn(*args, **kwargs)
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous or signal.SIG_DFL)
            elif entry is not None:
                _watchdog().disarm(entry)
    except TaskTimeout:
        raise TimeoutError(f"the task ran longer than its timeout of {timeout:g} s") from None


def call_with_timeout_of(fn: Callable, timeout: float, *args: Any, **kwargs: Any) -> Any:
    """``call_with_timeout`` with the function and timeout first (for ``functools.partial``)."""
    return call_with_timeout(fn, args, kwargs, timeout)


def _on_alarm(signum: int, frame: Any) -> None:
    raise TaskTimeout()


class _Watchdog:
    """One daemon thread per process that raises ``TaskTimeout`` in threads past their deadline."""

    def __init__(self) -> None:
        import heapq
        import itertools

        self._heap: list = []
        self._push, self._pop = heapq.heappush, heapq.heappop
        self._seq = itertools.count()
        self._cond = threading.Condition()
        threading.Thread(target=self._loop, name="nbexec-timeouts", daemon=True).start()

    def arm(self, ident: int | None, timeout: float) -> list:
        thread = threading.current_thread()
        entry = [time.monotonic() + timeout, next(self._seq), ident, "armed", thread, timeout]
        with self._cond:
            self._push(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    def disarm(self, entry: list) -> None:
        with self._cond:
            fired = entry[3] == "fired"
            entry[3] = "done"
        if fired:  # drop the exception if it has not landed yet
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(entry[2]), None)

    def _loop(self) -> None:
        cond, heap = self._cond, self._heap
        while True:
            with cond:
                while heap and heap[0][3] == "done":
                    self._pop(heap)
                if not heap:
                    cond.wait()
                    continue
                delay = heap[0][0] - time.monotonic()
                if delay > 0:
                    cond.wait(delay)
                    continue
                entry = self._pop(heap)
                entry[3] = "fired"
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(entry[2]), ctypes.py_object(TaskTimeout)
                )
            _on_timeout(entry[4], entry[5])
            entry[4] = None


_WATCHDOG: _Watchdog | None = None
_WATCHDOG_LOCK = threading.Lock()


def _on_timeout(thread: threading.Thread, timeout: float) -> None:
    """A thread's pool may fail its task at once (``_nbexec_on_timeout``: the thread may be
    blocked in C, where the exception waits until the call returns); not while retries remain."""
    hook = getattr(thread, "_nbexec_on_timeout", None)
    if hook is None or not getattr(thread, _FINAL_ATTR, True):
        return
    error = TimeoutError(f"the task ran longer than its timeout of {timeout:g} s")
    sink = getattr(thread, _SINK_ATTR, None)
    try:
        if isinstance(sink, OutputBuffer) and sink.parts:
            error._nbexec_output = sink.text()  # type: ignore[attr-defined]
        hook(error)
    except Exception:  # noqa: BLE001 - the watchdog thread must keep running
        pass


def _watchdog() -> _Watchdog:
    global _WATCHDOG
    if _WATCHDOG is None:
        with _WATCHDOG_LOCK:
            if _WATCHDOG is None:
                _WATCHDOG = _Watchdog()
    return _WATCHDOG


# --- Dask: stop flag, shipping the user's code, events ------------------------------------------

_STOPPED_ATTR = "_nbexec_stopped"


class TaskNotStarted(Exception):
    """The executor stopped before this task started, so it did not run."""


def _worker_or_none() -> Any:
    """The Dask worker running this thread's task, or None (also when distributed is not loaded)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return distributed.get_worker()
    except ValueError:
        return None


def run_task(token: str | None, fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Call ``fn(*args, **kwargs)`` unless the executor ``token`` has stopped on this worker."""
    if token is not None:
        worker = _worker_or_none()
        if worker is not None and token in getattr(worker, _STOPPED_ATTR, ()):
            raise TaskNotStarted(f"executor stopped before task started (token {token})")
    return fn(*args, **kwargs)


class MapCall:
    """``fn(*args)`` behind the stop-flag check, as one picklable callable for ``client.map``.

    ``fn`` travels by value (``ByValue``), its bytes computed once however many tasks share it.
    """

    __slots__ = ("token", "fn")

    def __init__(self, token: str | None, fn: Callable):
        self.token = token
        self.fn = fn if type(fn) is ByValue else ByValue(fn)

    def __reduce__(self) -> tuple:
        return (MapCall, (self.token, self.fn))

    def __call__(self, *args: Any) -> Any:
        return run_task(self.token, self.fn, args, {})


_UNLOADED = object()


def _from_bytes(data: bytes) -> ByValue:
    return ByValue(_UNLOADED, data)


def _from_reversed(data: bytes) -> ByValue:
    return ByValue(_UNLOADED, data[::-1])


class ByValue:
    """Wraps ``obj`` so that any pickler (distributed tries plain ``pickle`` first) sends it by value.

    Pickles as its cloudpickle bytes, computed once, and loads them only when first called: the
    scheduler, which unpickles and re-pickles every task, never runs the user's code, nor needs
    what it imports, nor pickles it again. The bytes travel reversed: distributed pickles a task a
    second time, with cloudpickle, when its bytes contain ``__main__`` (a notebook function's do).
    Code keeps its file names (``nbexec.runtime._pickling``), so tracebacks name the user's file.
    nbexec's own wrappers inside pickle by reference (this module).
    """

    __slots__ = ("obj", "data")

    def __init__(self, obj: Any, data: bytes | None = None):
        self.obj = obj
        self.data = data

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        obj = self.obj
        if obj is _UNLOADED:
            assert self.data is not None  # an unloaded ByValue always carries its bytes
            obj = self.obj = pickle.loads(self.data)
        return obj(*args, **kwargs)

    def __reduce__(self) -> tuple:
        data = self.data
        if data is None:  # pickling happens on the client, where nbexec is installed
            from nbexec.runtime._pickling import dumps

            data = self.data = dumps(self.obj, protocol=pickle.HIGHEST_PROTOCOL)
        return (_from_reversed, (data[::-1],))


def stop_token(token: str, interrupt_all: bool = False, dask_worker: Any = None) -> list[str]:
    """Mark ``token`` stopped on this worker; return the keys executing now (interrupt them if asked).

    Runs on the worker's event loop (``client.run``), where task threads are registered in
    ``active_threads`` before they start, so every task not listed here sees the flag.
    """
    stopped = getattr(dask_worker, _STOPPED_ATTR, None)
    if stopped is None:
        stopped = set()
        setattr(dask_worker, _STOPPED_ATTR, stopped)
    stopped.add(token)
    keys = [str(k) for k in dask_worker.active_threads.values()]
    if interrupt_all:
        _async_raise(dict(dask_worker.active_threads))
    return keys


def interrupt_keys(keys: Iterable[str], dask_worker: Any = None) -> int:
    """Raise ``TaskInterrupted`` in the worker threads executing ``keys``; return how many."""
    wanted = set(keys)
    threads = {i: k for i, k in dict(dask_worker.active_threads).items() if str(k) in wanted}
    return _async_raise(threads)


def still_running(keys: Iterable[str], dask_worker: Any = None) -> list[str]:
    """Which of ``keys`` a worker thread is still executing (e.g. blocked in C after an interrupt)."""
    wanted = set(keys)
    return [str(k) for k in dict(dask_worker.active_threads).values() if str(k) in wanted]


def release_threads(keys: Iterable[str], dask_worker: Any = None) -> list[str]:
    """On a worker's event loop: take the threads still running ``keys`` (interrupted, blocked in
    C) out of its pool the way ``secede()`` does, so new tasks get the full thread count at once;
    the interrupted task runs no further line (its exception is pending). Returns the keys freed."""
    from distributed.threadpoolexecutor import threads_lock
    from distributed.worker_state_machine import SecedeEvent

    wanted = set(keys)
    executor = dask_worker.executors.get("default")
    threads = {t.ident: t for t in threading.enumerate()}
    freed = []
    for ident, key in list(dict(dask_worker.active_threads).items()):
        ts = dask_worker.state.tasks.get(key)
        if str(key) not in wanted or ts is None:
            continue
        if ts.state != "executing" and not (ts.state == "cancelled" and ts.previous == "executing"):
            continue
        with threads_lock:
            pool = getattr(executor, "_threads", None)
            if pool is not None and threads.get(ident) in pool:
                pool.discard(threads[ident])
                executor._adjust_thread_count()
        dask_worker.handle_stimulus(
            SecedeEvent(key=key, compute_duration=0.0, stimulus_id=f"nbexec-free-{time.time()}")
        )
        freed.append(str(key))
    return freed


def _async_raise(threads: dict[int, Any]) -> int:
    count = 0
    for ident in threads:
        done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(ident), ctypes.py_object(TaskInterrupted)
        )
        count += int(done == 1)
    return count


def _new_emitter(topic: str, channel: str, pid: int) -> Emitter:
    emitter = Emitter(topic, channel)
    emitter._pid = pid
    return emitter


class Emitter:
    """Picklable ``emit(key, event, info)`` that logs ``[[channel, key, event, info], ...]`` to a
    Dask topic.

    One topic serves every run of an executor; ``channel`` names the run's channel, so the
    executor's handler passes each entry to that run's callback. On a worker, events are batched
    per worker and topic (one ``log_event`` per ``FLUSH_DELAY``, so the scheduler and the client
    handle one message per batch, not per event), in order; elsewhere it calls the local callback
    when it is in the process that made it, else the current client's ``log_event``.
    """

    __slots__ = ("topic", "channel", "_local", "_pid")

    def __init__(
        self, topic: str, channel: str, local: Callable[[str, str, dict], None] | None = None
    ):
        self.topic = topic
        self.channel = channel
        self._local = local
        self._pid = os.getpid()

    def __reduce__(self) -> tuple:
        return (_new_emitter, (self.topic, self.channel, self._pid))  # the callback stays here

    def __call__(self, key: str, event: str, info: dict | None = None) -> None:
        worker = _worker_or_none()
        if worker is not None:
            _buffer_event(worker, self.topic, [self.channel, key, event, info or {}])
        elif self._local is not None and os.getpid() == self._pid:
            self._local(key, event, info or {})
        else:
            from distributed import get_client

            get_client().log_event(self.topic, [[self.channel, key, event, info or {}]])


#: Seconds: events from one worker reach the scheduler (and the client) in batches this often.
FLUSH_DELAY = 0.1


def _buffer_event(worker: Any, topic: str, msg: list) -> None:
    """Queue ``msg`` (``[channel, key, event, info]``) and send the queue as one ``log_event``
    at most every ``FLUSH_DELAY``.

    The first event after a quiet spell goes out at once (on the worker's stream it then reaches
    the scheduler before the task's result), later ones wait for the next slot: one message per
    batch, and a one-task cell's "running" does not trail its result by a whole delay. So does
    the first event of a channel this worker has not sent for yet: the topic serves every run of
    an executor, and a cell that follows another within ``FLUSH_DELAY`` starts its own spell.
    """
    buffers = worker.__dict__.get("_nbexec_events")
    if buffers is None:
        buffers = worker.__dict__.setdefault("_nbexec_events", {})
    entry = buffers.get(topic)
    if entry is None:
        entry = buffers.setdefault(topic, (threading.Lock(), [], [0.0], set()))
    lock, pending, last_flush, channels = entry
    channel = msg[0]
    with lock:
        pending.append(msg)
        first = len(pending) == 1
        fresh = channel not in channels
        if fresh:
            if len(channels) >= 64:
                channels.clear()  # only recent runs matter; an old one would merely flush early
            channels.add(channel)
    if first or fresh:

        def flush() -> None:
            with lock:
                batch = pending[:]
                pending.clear()
                last_flush[0] = time.monotonic()
            if batch:
                worker.log_event(topic, batch)

        wait = 0.0 if fresh else last_flush[0] + FLUSH_DELAY - time.monotonic()
        if wait <= 0:
            worker.loop.add_callback(flush)
        else:
            worker.loop.add_callback(worker.loop.call_later, wait, flush)
