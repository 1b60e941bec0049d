"""The main of a process-pool child: ``python -m nbexec.pools._procworker RFD WFD PPID``.

Protocol (both ways): frames of ``struct "!IB"`` (body length, kind) followed by a pickle body.
Parent -> child: ``KIND_RUN`` with ``[(tid, fn, args, kwargs), ...]`` (cloudpickle), run in
order. Child -> parent:

- ``KIND_READY`` (empty body) once, when the child started;
- ``KIND_STARTED`` with ``(tid, t_start)`` at most once per task, only for a task that has been
  executing for ``STARTED_AFTER`` seconds, and always before that task's result frame;
- ``KIND_OK`` / ``KIND_ERR``, one per task as it finishes, with ``(tid, t_start, t_end, value,
  output)`` where value is the result, or ``(exception or None, traceback text)``, and output
  what the task printed (None if nothing);
- ``KIND_EVENT`` with ``(channel, key, event, info)`` (``ProcEmit``, from any thread);
- ``KIND_OUTPUT`` with ``(tid, at, parts)``: what a running task printed since its last part
  (``_nbexec_remote.LiveOutput``), at most one every ``PART_DELAY`` s, the last one before
  its result frame;
- ``KIND_LOADFAIL`` with the text of a chunk that could not be unpickled.

Times are ``time.time()``. One lock serializes every frame the child writes, whatever thread
writes it. The child ignores SIGINT, dies with its parent, and runs user code only inside tasks
(its main thread counts as inside a task body: ``_nbexec_remote.in_task_body()`` is true).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

from ..runtime._taskcall import enter_task_thread, set_output_sink

HEADER = struct.Struct("!IB")
KIND_RUN, KIND_OK, KIND_ERR, KIND_EVENT, KIND_LOADFAIL, KIND_READY, KIND_STARTED = range(7)
KIND_OUTPUT = 7

#: Seconds a task executes before the child reports it started (shorter ones are reported
#: started by their result frame only).
STARTED_AFTER = 0.02
#: Seconds without any chunk to run before the watcher thread parks until the next chunk.
_PARK_AFTER = 1.0

#: In a child: sends one frame to the parent (set by ``main``); None in the parent process.
_SEND: Callable[[int, bytes], None] | None = None
#: In the parent: channel id -> callback, for emits called in the parent itself.
CHANNELS: dict[str, Callable[[str, str, dict], None]] = {}


class ProcEmit:
    """Picklable ``emit(key, event, info)``: in a child it sends to the parent at once."""

    __slots__ = ("channel",)

    def __init__(self, channel: str) -> None:
        self.channel = channel

    def __getstate__(self) -> str:
        return self.channel

    def __setstate__(self, state: str) -> None:
        self.channel = state

    def __call__(self, key: str, event: str, info: dict | None = None) -> None:
        info = dict(info or {})
        if _SEND is not None:
            _SEND(KIND_EVENT, pickle.dumps((self.channel, key, event, info), protocol=5))
        else:
            callback = CHANNELS.get(self.channel)
            if callback is not None:
                callback(key, event, info)


class _Current:
    """What the child's main thread executes: ``task`` is ``(tid, t_start)`` or None.

    The main loop stores a new tuple when a task starts and None when it ends (plain attribute
    stores); ``busy`` is set while a chunk runs, so the watcher parks when the child is idle.
    """

    __slots__ = ("task", "busy")

    def __init__(self) -> None:
        self.task: tuple[int, float] | None = None
        self.busy = threading.Event()


def _watch(current: _Current, lock: threading.Lock, write: Callable[[bytes], None]) -> None:
    """Send ``KIND_STARTED`` once for each task that executes for ``STARTED_AFTER`` seconds.

    Looks about every ``STARTED_AFTER`` seconds while chunks run (at most about twice as often;
    never woken per task) and parks after ``_PARK_AFTER`` seconds without a chunk. The frame is
    written under the send lock only if the task is still the current one: the main thread
    clears ``current.task`` before it sends the result, so a STARTED frame always precedes its
    task's result frame, and none is sent once the task returned.
    """
    now, sleep = time.time, time.sleep
    reported = None
    idle_since = None
    try:
        while True:
            task = current.task
            if task is None:
                if current.busy.is_set():
                    idle_since = None
                elif idle_since is None:
                    idle_since = now()
                elif now() - idle_since >= _PARK_AFTER:
                    current.busy.wait()
                    idle_since = None
                    continue
                sleep(STARTED_AFTER)
                continue
            idle_since = None
            if task is reported:
                sleep(STARTED_AFTER)
                continue
            age = now() - task[1]
            if age < STARTED_AFTER:
                sleep(STARTED_AFTER - age)
                continue
            reported = task
            body = pickle.dumps(task, protocol=5)
            data = HEADER.pack(len(body), KIND_STARTED) + body
            with lock:
                if current.task is task:
                    write(data)
    except OSError:
        pass  # the parent is gone; the main thread will see it too


def _die_with_parent(ppid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except Exception:
            pass
    if os.getppid() != ppid:
        os._exit(1)


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _keep_traceback(exc: BaseException) -> None:
    """Let ``exc`` pickle with its traceback (tblib), so the parent shows the real frames."""
    try:
        from tblib import pickling_support

        pickling_support.install(exc)
    except Exception:  # noqa: BLE001 - the formatted text still travels
        pass


#: In a child: ``_nbexec_remote.LiveOutput`` (set by ``main``).
_live_output: Any = None


class _ChildSink:
    """The sink of the child's main thread between tasks and until the current task ``tid``
    writes: its first write makes it a ``LiveOutput`` (parts to the parent while the task runs),
    the main thread's sink until ``take`` gives what the task printed to send with its result."""

    __slots__ = ("send_part", "tid", "live")

    def __init__(self, send_part: Callable[[int, int, list], None]) -> None:
        self.send_part = send_part
        self.tid = 0
        self.live: Any = None

    def write_output(self, text: str) -> None:
        live = self.live
        if live is None:
            live = self.live = _live_output(partial(self.send_part, self.tid))
            set_output_sink(threading.main_thread(), live)
        live.write_output(text)

    def take(self) -> str | None:
        """What the task printed (None if nothing), after its last part went out; a task that
        printed only to stdout and sent no part yet sends none (its result shows the text)."""
        live = self.live
        if live is None:
            return None
        self.live = None
        set_output_sink(threading.main_thread(), self)
        if live.sent or any(s not in (None, "stdout") for s, _ in live.pending):  # parts went
            last = live.take_parts()
            if last is not None:
                self.send_part(self.tid, *last)
        else:
            live.pending = []  # shown from the result instead
        return live.take()


def main(argv: list[str]) -> None:
    """Serve tasks from the parent until the pipe closes."""
    global _SEND, _live_output
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rfd, wfd, ppid = int(argv[1]), int(argv[2]), int(argv[3])
    _die_with_parent(ppid)
    extra = os.environ.get("NBEXEC_SYS_PATH")
    if extra:
        for p in extra.split(os.pathsep):
            if p and p not in sys.path:
                sys.path.append(p)
    # Every line of user code here runs inside a task: calling a task is a plain call.
    enter_task_thread(threading.main_thread())
    import cloudpickle

    from _nbexec_remote import LiveOutput, contain, install_output_tee

    _live_output = LiveOutput

    dumps = cloudpickle.dumps
    # What each task prints still reaches the parent's streams, goes to the parent in parts
    # while the task runs, and travels whole with its result.
    install_output_tee()
    main_thread = threading.main_thread()
    lock = threading.Lock()  # every frame to the parent is written under it, whole

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(wfd, view) :]

    def send(kind: int, body: bytes) -> None:
        data = HEADER.pack(len(body), kind) + body
        with lock:
            write(data)

    _SEND = send

    def send_part(tid: int, at: int, parts: list) -> None:
        send(KIND_OUTPUT, pickle.dumps((tid, at, parts), protocol=5))

    out = _ChildSink(send_part)
    set_output_sink(main_thread, out)

    current = _Current()
    watcher = threading.Thread(
        target=_watch, args=(current, lock, write), name="nbexec-started", daemon=True
    )
    watcher.start()
    send(KIND_READY, b"")
    now = time.time
    busy = current.busy
    while True:
        busy.clear()
        header = _read_exact(rfd, HEADER.size)
        if header is None:
            return
        size, kind = HEADER.unpack(header)
        body = _read_exact(rfd, size)
        if body is None:
            return
        try:
            tasks = pickle.loads(body)
        except BaseException:
            send(KIND_LOADFAIL, pickle.dumps(traceback.format_exc()))
            continue
        del body
        busy.set()
        for tid, fn, args, kwargs in tasks:
            out.tid, out.live = tid, None
            t0 = now()
            current.task = (tid, t0)
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                current.task = None
                t1 = now()
                text = traceback.format_exc()
                failure = contain(
                    exc
                )  # SystemExit, GeneratorExit...: fail the task, keep the child
                if failure is not exc:
                    exc = failure
                _keep_traceback(exc)
                printed = out.take()
                try:
                    data = dumps((tid, t0, t1, (exc, text), printed), protocol=5)
                except BaseException:
                    data = dumps((tid, t0, t1, (None, text), printed), protocol=5)
                send(KIND_ERR, data)
                del exc
                continue
            current.task = None
            t1 = now()
            printed = out.take()
            try:
                data = dumps((tid, t0, t1, value, printed), protocol=5)
            except BaseException as exc:
                text = f"cannot pickle the result: {exc!r}\n{traceback.format_exc()}"
                data = dumps((tid, t0, t1, (None, text), printed), protocol=5)
                send(KIND_ERR, data)
                continue
            send(KIND_OK, data)
            del value, data
        tasks = fn = args = kwargs = None  # free the last chunk's inputs while idle


if __name__ == "__main__":
    from nbexec.pools import _procworker

    _procworker.main(sys.argv)
