"""SlimFuture keeps the ``concurrent.futures.Future`` contract that nbexec's pools rely on."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from nbexec.pools._slimfuture import SlimFuture
from nbexec.pools._threadpool import InterruptiblePool, force_cancel


def test_result_exception_and_callbacks_follow_the_future_contract():
    seen = []
    f = SlimFuture()
    f.add_done_callback(lambda fut: seen.append(("early", fut.result())))
    assert not f.done() and not f.running()
    assert f.set_running_or_notify_cancel() and f.running()
    assert not f.cancel()  # running: cannot be cancelled
    f.set_result(42)
    f.set_result(0)  # a late second outcome is ignored
    f.add_done_callback(lambda fut: seen.append(("late", fut.result())))
    assert f.done() and f.result() == 42 and f.exception() is None
    assert seen == [("early", 42), ("late", 42)]

    g = SlimFuture()
    g.set_running_or_notify_cancel()
    g.set_exception(ValueError("boom"))
    assert isinstance(g.exception(), ValueError)
    with pytest.raises(ValueError, match="boom"):
        g.result()


def test_a_cancelled_future_is_never_claimed_and_raises_cancelled_error():
    f = SlimFuture()
    assert f.cancel() and f.cancel() and f.cancelled() and f.done()
    assert not f.set_running_or_notify_cancel()
    with pytest.raises(CancelledError):
        f.result()
    with pytest.raises(CancelledError):
        f.exception()


def test_result_times_out_then_wakes_every_waiter():
    f = SlimFuture()
    with pytest.raises(TimeoutError):
        f.result(timeout=0.05)
    got = []
    waiters = [threading.Thread(target=lambda: got.append(f.result(timeout=10))) for _ in range(4)]
    for t in waiters:
        t.start()
    time.sleep(0.05)
    f.set_running_or_notify_cancel()
    f.set_result("v")
    for t in waiters:
        t.join(10)
    assert got == ["v"] * 4


def test_force_cancel_stops_a_running_future_but_not_a_finished_one():
    f = SlimFuture()
    f.set_running_or_notify_cancel()
    assert force_cancel(f) and f.cancelled()
    f.set_result(1)  # the interrupted call returning late changes nothing
    assert f.cancelled()
    g = SlimFuture()
    g.set_running_or_notify_cancel()
    g.set_result(1)
    assert not force_cancel(g) and g.result() == 1


def test_hooks_run_in_the_transitioning_thread_before_waiters_wake():
    events = []

    class Hooked(SlimFuture):
        __slots__ = ()

        def _on_running(self):
            events.append(("running", threading.current_thread().name))

        def _on_finished(self, state):
            events.append(("finished", state, self.done()))

    pool = InterruptiblePool(1, name="slim-test")
    try:
        f = Hooked()
        pool.submit_to(f, time.sleep, (0.01,), {})
        f.result(timeout=10)
        assert events == [("running", "slim-test-0"), ("finished", "FINISHED", False)]
    finally:
        pool.shutdown()


def test_an_outcome_set_while_the_finishing_hook_runs_is_ignored():
    calls = []

    class Reentrant(SlimFuture):
        __slots__ = ()

        def _on_finished(self, state):
            calls.append(state)
            self.set_result("late")  # the call returning while an interrupt is finishing it

    f = Reentrant()
    f.set_running_or_notify_cancel()
    assert force_cancel(f)
    assert calls == ["CANCELLED"] and f.cancelled()


def test_an_interrupt_between_claim_and_call_stops_the_call():
    """The pool claims a future, then registers it as running: an interrupt landing in between
    must still keep the call from running (it used to find nothing to stop, and the task ran)."""
    ran = threading.Event()
    pool = InterruptiblePool(1, name="slim-window")

    class InterruptedAtClaim(SlimFuture):
        __slots__ = ()

        def _on_running(self):  # in the worker, after the claim, before the registration
            pool.interrupt([self])

    try:
        f = InterruptedAtClaim()
        pool.submit_to(f, ran.set, (), {})
        with pytest.raises(CancelledError):
            f.result(timeout=10)
        after = SlimFuture()  # the worker survives and runs the next task normally
        pool.submit_to(after, abs, (-2,), {})
        assert after.result(timeout=10) == 2
        assert not ran.is_set()
    finally:
        pool.shutdown()
