"""What a task prints: captured per task by a tee in front of ``sys.stdout``/``sys.stderr``
(``OutputTee``), kept (``OutputBuffer``) and passed on in parts while it runs (``LiveOutput``)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

#: The thread attribute naming where this thread's task output goes: an object with
#: ``write_output(text)``, or None.
_SINK_ATTR = "_nbexec_sink"
#: Characters of output kept per task (the last ones).
MAX_OUTPUT = 100_000


def output_sink(thread: threading.Thread) -> Any:
    """Where what ``thread``'s task prints goes (an object with ``write_output(text)``), or None."""
    return getattr(thread, _SINK_ATTR, None)


def set_output_sink(thread: threading.Thread, sink: Any) -> None:
    """Send what ``thread``'s task prints to ``sink`` (``write_output(text)``); None: nowhere."""
    setattr(thread, _SINK_ATTR, sink)


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
_PARTS_LOCK = threading.Lock()


def _parts_sender() -> _Parts:
    global _PARTS
    parts = _PARTS
    if parts is None or parts.pid != os.getpid():  # none yet, or inherited through a fork
        with _PARTS_LOCK:
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
