"""What a run's tasks print: kept per task (the last ``MAX_OUTPUT`` characters), and echoed to
the cell when the task's own output is not shown elsewhere (``Run.route_output``).

``TrackerOutput`` is a part of ``Tracker`` (nbexec.core.tracking). Output arrives three ways:
written here by the thread running the task (threads, sync, local: ``add_output``), in parts
while the task runs elsewhere (processes, Dask: ``add_part``, with their offset in all the task
printed and their stream), and whole once it ended (``set_output``). Each task counts the
characters it holds in order (``_held``): a part is taken only at that offset, and the whole
text echoes only what no part echoed. One lock per tracker orders these writers.
"""

from __future__ import annotations

import threading
from typing import Any

from ..runtime._taskcall import MAX_OUTPUT, STREAM_ATTR, keep_tail

__all__ = ["TrackerOutput"]

_CUT = keep_tail("x" * 2, 1)[:-1]  # how a text cut to its tail begins


class TrackerOutput:
    """Each task's printed output, and its echo."""

    _outputs: dict[int, list[str]]
    _held: dict[int, int]
    _out_lock: threading.Lock
    _queued: int
    echo: Any

    def _append(self, task_id: int, text: str) -> None:
        parts = self._outputs.get(task_id)
        if parts is None:
            self._outputs[task_id] = parts = []
        parts.append(text)
        if len(parts) > 256 or len(text) > MAX_OUTPUT:
            parts[:] = [keep_tail("".join(parts))]

    def add_output(self, task_id: int, text: str) -> None:
        """Append ``text`` to what the task printed (the last ``MAX_OUTPUT`` characters are kept),
        written by the thread running the task; echoed at once if it was kept from its stream."""
        with self._out_lock:
            self._append(task_id, text)
            self._held[task_id] = self._held.get(task_id, 0) + len(text)
            self._queued += 1
            quiet = getattr(threading.current_thread(), "_nbexec_quiet", False)
            if quiet and self.echo is not None:  # kept from its stream: shown here instead
                self._show(text)  # the writing thread names its stream (``STREAM_ATTR``)

    def add_part(self, task_id: int, at: int, parts: list) -> None:
        """A part of what a task running elsewhere printed: ``[[stream, text], ...]`` starting at
        character ``at`` of all it printed. Taken (and echoed, each text on its stream) only if
        it follows what the task holds; a part that came late or twice is dropped."""
        with self._out_lock:
            held = self._held.get(task_id, 0)
            if at != held:
                return
            for stream, text in parts:
                self._append(task_id, text)
                held += len(text)
                if self.echo is not None:
                    self._show(text, stream)
            self._held[task_id] = held
            self._queued += 1

    def set_output(self, task_id: int, text: str, n: int | None = None) -> None:
        """Set everything the task printed (sent whole from where it ran; ``n``: how many
        characters it printed, if known), echoing only what no part showed yet."""
        if not text:
            return
        with self._out_lock:
            held = self._held.get(task_id, 0)
            if n is None:  # a text cut to its tail after parts came: assume they covered it
                n = held if held and text.startswith(_CUT) else len(text)
            self._outputs[task_id] = [keep_tail(text)]
            self._queued += 1
            if n > held:
                self._held[task_id] = n
                if self.echo is not None:
                    self._show(text[-(n - held) :] if n - held < len(text) else text)

    def output_event(self, task_id: int, info: dict) -> None:
        """An "output" event from where the task ran: a part, and/or the whole text at its end."""
        parts = info.get("parts")
        if parts:
            self.add_part(task_id, info.get("at", 0), parts)
        text = info.get("text")
        if text:
            self.set_output(task_id, text, info.get("n"))

    def _show(self, text: str, stream: str | None = None) -> None:
        thread = threading.current_thread()
        outer = getattr(thread, STREAM_ATTR, None)
        if stream is not None:
            setattr(thread, STREAM_ATTR, stream)  # where the echo writes it
        try:
            self.echo(text)
        except Exception:  # noqa: BLE001 - showing output must never break a task
            pass
        finally:
            if stream is not None:
                setattr(thread, STREAM_ATTR, outer)

    def output(self, task_id: int) -> str:
        """What the task printed so far (stdout and stderr, as text); "" if nothing."""
        with self._out_lock:
            parts = self._outputs.get(task_id)
            if not parts:
                return ""
            if len(parts) > 1:
                parts[:] = [keep_tail("".join(parts))]
            return parts[0]
