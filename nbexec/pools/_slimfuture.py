"""``SlimFuture``: the ``concurrent.futures.Future`` protocol that nbexec's pools complete, made cheap.

A ``concurrent.futures.Future`` carries a ``Condition`` (an RLock, a deque and six bound methods)
and takes it on every transition: about ten objects the garbage collector tracks and a dozen lock
round trips per task. A SlimFuture is one object with ``__slots__``; one module-wide lock guards
its transitions (held for a few bytecodes, never while a callback runs) and waiting for an
unfinished one creates an ``Event`` only then. Runs use it for every task of a local pool
(``LocalDaskExecutor.submit_to``), and ``LocalDaskExecutor``'s own futures are SlimFutures.
``concurrent.futures.wait``/``as_completed`` accept it: what they read (``_condition``,
``_waiters``, ``_state``) is made only once one of them waits (``_stdwait.StdWatch``).
``SlimFuture.finished(result, exception)`` is one that is done from the start.

Hooks for subclasses, called in the thread that makes the transition: ``_on_running`` (claimed by
the thread about to execute the call), ``_on_finished`` (just before the future becomes done and
its callbacks run), ``set_started`` and ``set_ran`` (a pool whose workers live elsewhere reports
when the call really started, and where; ``set_ran`` comes with the outcome).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

from ._stdwait import CANCELLED_AND_NOTIFIED, StdWatch

__all__ = ["SlimFuture", "PENDING", "RUNNING", "FINISHED", "CANCELLED"]

PENDING, RUNNING, FINISHED, CANCELLED = "PENDING", "RUNNING", "FINISHED", "CANCELLED"
FINISHING = "FINISHING"  # the outcome is set and the finishing hook runs; not done yet
_DONE = (FINISHED, CANCELLED)
_ENDED = (FINISHED, CANCELLED, FINISHING)  # an outcome is set: later ones are ignored
_lock = threading.Lock()


class SlimFuture:
    """A future completed by a pool: ``done``, ``result``, ``exception``, ``cancel``, callbacks."""

    # ``_st``: the state (``_state`` is what concurrent.futures reads, below).
    __slots__ = ("_st", "_result", "_exception", "_callbacks", "_event", "_watch")

    def __init__(self) -> None:
        self._st = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._callbacks: list | None = None
        self._event: threading.Event | None = None
        self._watch: StdWatch | None = None  # made once concurrent.futures.wait waits on it

    @classmethod
    def finished(cls, result: Any = None, exception: BaseException | None = None) -> SlimFuture:
        """A future that is done: with ``exception`` if given, else with ``result``."""
        future = cls.__new__(cls)
        future._st = FINISHED
        future._result = result
        future._exception = exception
        future._callbacks = None
        future._event = None
        future._watch = None
        return future

    # --- hooks -------------------------------------------------------------------------------

    def _on_running(self) -> None:
        """Called once the future is claimed to run (by the thread that will run it)."""

    def _on_finished(self, state: str) -> None:
        """Called with FINISHED or CANCELLED once the outcome is set, before waiters wake."""

    def set_started(self, t: float, where: str) -> None:
        """The call started executing at ``t`` (``time.time()``) on ``where``; a no-op here."""

    def set_ran(self, t_start: float, t_end: float, where: str) -> None:
        """Called right before the outcome is set: the call ran from ``t_start`` to ``t_end`` on
        ``where``. Here it is ``set_started(t_start, where)``."""
        self.set_started(t_start, where)

    # --- the pool's side ---------------------------------------------------------------------

    def set_running_or_notify_cancel(self) -> bool:
        """Claim the future to run it: False if it was cancelled (then do not run it)."""
        with _lock:
            if self._st is not PENDING:
                if self._st is CANCELLED or self._st is FINISHING:
                    return False  # cancelled (or being cancelled)
                raise RuntimeError(f"future in unexpected state {self._st}")
            self._st = RUNNING
        self._on_running()
        return True

    def set_result(self, result: Any) -> None:
        """Finish with ``result``; ignored if it already ended (e.g. it was interrupted)."""
        self._complete(result, None)

    def set_exception(self, exception: BaseException) -> None:
        """Finish with ``exception``; ignored if it already ended."""
        self._complete(None, exception)

    def _complete(self, result: Any, exception: BaseException | None) -> None:
        with _lock:
            if self._st in _ENDED:
                return
            self._result = result
            self._exception = exception
            self._st = FINISHING
        self._finish(FINISHED)

    def cancel(self) -> bool:
        """Cancel unless it is running or done; True if it is (now) cancelled."""
        with _lock:
            if self._st is CANCELLED:
                return True
            if self._st is not PENDING:
                return False
            self._st = FINISHING
        self._finish(CANCELLED)
        return True

    def force_cancel(self) -> bool:
        """Cancel even while running (the call was interrupted); False if it had already ended."""
        with _lock:
            if self._st in _ENDED:
                return self._st is CANCELLED
            self._st = FINISHING
        self._finish(CANCELLED)
        return True

    def _finish(self, state: str) -> None:
        # FINISHING keeps other transitions out while the hook runs; readers still see "not done".
        try:
            self._on_finished(state)
        finally:
            self._st = state
            event = self._event
            if event is not None:
                event.set()
            watch = self._watch  # read after the state is set: see _watched
            if watch is not None:
                watch.tell(self, self._outcome())
            callbacks, self._callbacks = self._callbacks, None
            if callbacks:
                for callback in callbacks:
                    try:
                        callback(self)
                    except Exception:
                        import logging

                        logging.getLogger("nbexec").exception(
                            "done callback %r of %r failed", callback, self
                        )

    # --- the waiter's side -------------------------------------------------------------------

    def done(self) -> bool:
        return self._st in _DONE

    def cancelled(self) -> bool:
        return self._st is CANCELLED

    def running(self) -> bool:
        return self._st is RUNNING

    def add_done_callback(self, fn: Callable[[SlimFuture], Any]) -> None:
        """Call ``fn(self)`` when done (now, in this thread, if it already is)."""
        with _lock:
            if self._st not in _DONE:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        fn(self)

    def _wait(self, timeout: float | None) -> None:
        if self._st in _DONE:
            return
        with _lock:
            event = self._event
            if event is None:
                event = self._event = threading.Event()
        # _finish sets the state before it reads _event: either it sees this event, or the
        # state check below sees the end.
        if self._st not in _DONE and not event.wait(timeout):
            raise TimeoutError()

    def result(self, timeout: float | None = None) -> Any:
        """The value; raises the exception, ``CancelledError``, or ``TimeoutError``."""
        self._wait(timeout)
        if self._st is CANCELLED:
            raise CancelledError()
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The exception (None after a success); raises ``CancelledError`` or ``TimeoutError``."""
        self._wait(timeout)
        if self._st is CANCELLED:
            raise CancelledError()
        return self._exception

    # --- what concurrent.futures.wait and as_completed read ------------------------------------

    @property
    def _condition(self) -> threading.Condition:
        return self._watched().condition

    @property
    def _waiters(self) -> list:
        return self._watched().waiters

    @property
    def _state(self) -> str:
        """The state in ``concurrent.futures`` terms: done only once the waiters were told."""
        st = self._st
        if st in _DONE:
            watch = self._watch
            if watch is not None and not watch.told:
                return RUNNING  # ended, but its waiters are not told yet: they will be
            return FINISHED if st is FINISHED else CANCELLED_AND_NOTIFIED
        return PENDING if st is PENDING else RUNNING

    def _watched(self) -> StdWatch:
        watch = self._watch
        if watch is None:
            with _lock:
                watch = self._watch
                if watch is None:
                    watch = self._watch = StdWatch()
            # _finish sets the state before it reads _watch, and this reads the state after
            # setting _watch: at least one of them tells (StdWatch.tell does it once).
            if self._st in _DONE:
                watch.tell(self, self._outcome())
        return watch

    def _outcome(self) -> str:
        if self._st is CANCELLED:
            return "cancelled"
        return "success" if self._exception is None else "failed"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._st.lower()}>"
