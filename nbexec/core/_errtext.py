"""Error texts cut to a readable size for the task table and ``TaskFailed``'s message.

The exception itself is never changed: it stays whole on the task's future.
"""

from __future__ import annotations

__all__ = ["MAX_ERROR_TEXT", "cut"]

#: Characters of an error message (or traceback text) shown; longer ones keep head and tail.
MAX_ERROR_TEXT = 10_000


def cut(text: str | None, limit: int = MAX_ERROR_TEXT) -> str | None:
    """``text`` if it is at most ``limit`` characters, else its head and tail around a note."""
    if text is None or len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half:,} characters cut ...]\n{text[-half:]}"
