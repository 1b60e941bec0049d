"""What a run's tasks print: kept per task (the last ``MAX_OUTPUT`` characters), and echoed to
the cell when the task's own output is not shown elsewhere (``Run.route_output``).

``TrackerOutput`` is a part of ``Tracker`` (nbexec.core.tracking). Output is written by the
thread running the task (one writer per task): no lock is needed.
"""

from __future__ import annotations

import threading
from typing import Any

from ..runtime._taskcall import MAX_OUTPUT, keep_tail

__all__ = ["TrackerOutput"]


class TrackerOutput:
    """Each task's printed output, and its echo."""

    _outputs: dict[int, list[str]]
    _echoed: set[int]
    _queued: int
    echo: Any

    def add_output(self, task_id: int, text: str) -> None:
        """Append ``text`` to what the task printed (the last ``MAX_OUTPUT`` characters are kept)."""
        parts = self._outputs.get(task_id)
        if parts is None:
            self._outputs[task_id] = parts = []
        parts.append(text)
        if len(parts) > 256 or len(text) > MAX_OUTPUT:
            parts[:] = [keep_tail("".join(parts))]
        self._queued += 1
        if self.echo is not None and getattr(threading.current_thread(), "_nbexec_quiet", False):
            self._echoed.add(task_id)
            self._show(text)

    def set_output(self, task_id: int, text: str) -> None:
        """Set everything the task printed (sent whole from where it ran)."""
        if text:
            self._outputs[task_id] = [keep_tail(text)]
            self._queued += 1
            if self.echo is not None and task_id not in self._echoed:
                self._echoed.add(task_id)  # sent whole once (with its error, or as an event)
                self._show(text)

    def _show(self, text: str) -> None:
        try:
            self.echo(text)
        except Exception:  # noqa: BLE001 - showing output must never break a task
            pass

    def output(self, task_id: int) -> str:
        """What the task printed so far (stdout and stderr, as text); "" if nothing."""
        parts = self._outputs.get(task_id)
        if not parts:
            return ""
        if len(parts) > 1:
            parts[:] = [keep_tail("".join(parts))]
        return parts[0]
