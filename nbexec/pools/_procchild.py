"""The parent's side of one process-pool child: spawning it, its pipes, and its frames.

``spawn_child`` starts ``python -m nbexec.pools._procworker`` with a pair of pipes and a daemon
thread that reads the child's frames (``read_frame``) until the pipe closes. ``ProcPool``
(``nbexec.pools._procpool``) owns the children and decides what they run; the frame format is
described in ``nbexec.pools._procworker``.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..runtime._taskcall import _nbexec_remote as rt
from . import _procworker as pw
from ._threadpool import _finish

__all__ = [
    "WorkerDiedError", "TaskPicklingError", "RemoteTraceback", "remote_error", "spawn_child",
    "read_frame", "on_event", "call_hook", "complete", "sigkill",
]  # fmt: skip

logger = logging.getLogger("nbexec.ProcPool")
_PKG_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WorkerDiedError(RuntimeError):
    """A pool process died while running a task."""


class TaskPicklingError(TypeError):
    """A task's function, arguments or result could not cross the process boundary."""


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in a pool process (set as ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def remote_error(exc: BaseException | None, text: str, where: str) -> BaseException:
    """The exception to raise for a ``KIND_ERR`` frame: ``exc`` with where it came from."""
    if exc is None:
        return TaskPicklingError(f"{where} failed; what it sent back could not be pickled:\n{text}")
    if isinstance(exc, rt.TaskExit):  # the task's own SystemExit...: the original stays the cause
        exc.__cause__ = remote_error(exc.exc, text, where)
        return exc
    if exc.__traceback__ is None:  # the traceback did not travel: keep its text
        exc.__cause__ = RemoteTraceback(f'\n"""\nRaised by {where}:\n{text}"""')
    elif hasattr(exc, "add_note"):
        exc.add_note(f"(raised by {where})")
    return exc


class _Task:
    __slots__ = ("future", "fn", "args", "kwargs", "tid", "sent")

    def __init__(self, future: Future, fn: Callable, args: tuple, kwargs: dict, tid: int):
        self.future, self.fn, self.args, self.kwargs = future, fn, args, kwargs
        self.tid, self.sent = tid, False

    @property
    def key(self) -> str:
        return str(getattr(self.future, "key", None) or getattr(self.fn, "__name__", "task"))


class _Child:
    __slots__ = (
        "proc",
        "pid",
        "where",
        "wfd",
        "rfd",
        "inflight",
        "sizes",
        "alive",
        "killed",
        "wlock",
        "ready",
    )

    def __init__(self, proc: subprocess.Popen, wfd: int, rfd: int) -> None:
        self.proc, self.pid, self.wfd, self.rfd = proc, proc.pid, wfd, rfd
        self.where = f"pid {proc.pid}"  # for ``set_started``
        self.inflight: deque[_Task] = deque()  # sent, in the order the child runs them
        self.sizes: deque[int] = deque()  # tasks per frame sent, for load failures
        self.alive, self.killed = True, False
        self.wlock = threading.Lock()
        self.ready = threading.Event()

    def write(self, kind: int, body: bytes) -> None:
        data = memoryview(pw.HEADER.pack(len(body), kind) + body)
        with self.wlock:
            try:
                while data:
                    data = data[os.write(self.wfd, data) :]
            except OSError:
                pass  # the child died; its reader handles it

    def close_write(self) -> None:
        """Close the pipe to the child (it exits at EOF)."""
        with self.wlock:
            try:
                os.close(self.wfd)
            except OSError:
                pass
            self.wfd = -1

    def reap(self) -> int:
        """Once its pipe closed: wait for the child to exit (kill it after 5 s), close the fds."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        with self.wlock:
            for fd in (self.wfd, self.rfd):
                if fd >= 0:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self.wfd = -1
        return code


def spawn_child(reader: Callable[[_Child], None]) -> _Child:
    """Start a child process and a daemon thread running ``reader(child)``."""
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    env = dict(os.environ)
    env["NBEXEC_SYS_PATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PKG_ROOT, env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "nbexec.pools._procworker", str(p2c_r), str(c2p_w)]
    try:
        proc = subprocess.Popen(
            [*argv, str(os.getpid())],
            pass_fds=(p2c_r, c2p_w),
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except BaseException:
        for fd in (p2c_r, p2c_w, c2p_r, c2p_w):
            os.close(fd)
        raise
    os.close(p2c_r)
    os.close(c2p_w)
    child = _Child(proc, p2c_w, c2p_r)
    t = threading.Thread(target=reader, args=(child,), name=f"nbexec-proc-{proc.pid}")
    t.daemon = True
    t.start()
    return child


def read_frame(rfd: int) -> tuple[int, bytes] | None:
    """``(kind, body)`` of the next frame on ``rfd``; None once the pipe is closed."""
    header = pw._read_exact(rfd, pw.HEADER.size)
    if header is None:
        return None
    size, kind = pw.HEADER.unpack(header)
    body = pw._read_exact(rfd, size)
    return None if body is None else (kind, body)


def on_event(body: bytes) -> None:
    """A ``KIND_EVENT`` frame: call the channel's callback (``ProcEmit``); never raises."""
    try:
        channel, key, event, info = pickle.loads(body)
        callback = pw.CHANNELS.get(channel)
        if callback is not None:
            callback(key, event, info)
    except Exception:
        logger.exception("event callback failed")


def call_hook(future: Any, hook: str, *args: Any) -> None:
    """``future.<hook>(*args)`` if the future has that hook (``set_started``, ``set_ran`` of a
    ``SlimFuture``); never raises."""
    method = getattr(future, hook, None)
    if method is not None:
        try:
            method(*args)
        except Exception:
            logger.exception("%s failed", hook)


def complete(task: _Task, child: _Child, kind: int, body: bytes) -> None:
    """Finish ``task``'s future from its ``KIND_OK``/``KIND_ERR`` frame (reporting it started)."""
    future = task.future
    try:
        _tid, t0, t1, value, output = pickle.loads(body)
    except BaseException as exc:
        err = TaskPicklingError(f"cannot unpickle the result of task {task.key!r}: {exc!r}")
        err.__cause__ = exc
        _finish(future, exc=err)
        return
    call_hook(future, "set_ran", t0, t1, child.where)
    if output:
        call_hook(future, "set_output", output)
    if kind == pw.KIND_OK:
        _finish(future, value)
        return
    error, text = value
    where = f"task {task.key!r} in worker process {child.pid}"
    _finish(future, exc=remote_error(error, text, where))


def sigkill(pid: int) -> None:
    """SIGKILL ``pid`` if it still exists."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
