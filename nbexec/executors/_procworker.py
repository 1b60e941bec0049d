"""The main of a process-pool child: ``python -m nbexec.executors._procworker RFD WFD PPID``.

Protocol (both ways): frames of ``struct "!IB"`` (body length, kind) followed by a pickle.
Parent -> child: ``KIND_RUN`` with ``[(tid, fn, args, kwargs), ...]`` (cloudpickle), run in
order. Child -> parent, one frame per task as it finishes: ``KIND_OK`` / ``KIND_ERR`` with
``(tid, t_start, t_end, value)`` where value is the result, or ``(exception or None, traceback
text)``; ``KIND_EVENT`` with ``(channel, key, event, info)``; ``KIND_LOADFAIL`` with the text of a
chunk that could not be unpickled; ``KIND_READY`` once, when started. The child ignores SIGINT and dies with its parent.
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

HEADER = struct.Struct("!IB")
KIND_RUN, KIND_OK, KIND_ERR, KIND_EVENT, KIND_LOADFAIL, KIND_READY = range(6)

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


def main(argv: list[str]) -> None:
    """Serve tasks from the parent until the pipe closes."""
    global _SEND
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rfd, wfd, ppid = int(argv[1]), int(argv[2]), int(argv[3])
    _die_with_parent(ppid)
    extra = os.environ.get("NBEXEC_SYS_PATH")
    if extra:
        for p in extra.split(os.pathsep):
            if p and p not in sys.path:
                sys.path.append(p)
    import cloudpickle

    dumps = cloudpickle.dumps
    lock = threading.Lock()

    def send(kind: int, body: bytes) -> None:
        data = HEADER.pack(len(body), kind) + body
        with lock:
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view) :]

    _SEND = send
    send(KIND_READY, b"")
    now = time.time
    while True:
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
        for tid, fn, args, kwargs in tasks:
            t0 = now()
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:
                t1 = now()
                text = traceback.format_exc()
                _keep_traceback(exc)
                try:
                    data = dumps((tid, t0, t1, (exc, text)), protocol=5)
                except BaseException:
                    data = dumps((tid, t0, t1, (None, text)), protocol=5)
                send(KIND_ERR, data)
                del exc
                continue
            t1 = now()
            try:
                data = dumps((tid, t0, t1, value), protocol=5)
            except BaseException as exc:
                text = f"cannot pickle the result: {exc!r}\n{traceback.format_exc()}"
                data = dumps((tid, t0, t1, (None, text)), protocol=5)
                send(KIND_ERR, data)
                continue
            send(KIND_OK, data)
            del value, data
        tasks = fn = args = kwargs = None  # free the last chunk's inputs while idle


if __name__ == "__main__":
    from nbexec.executors import _procworker

    _procworker.main(sys.argv)
