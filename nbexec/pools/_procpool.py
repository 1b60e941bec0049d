"""A process pool of ``python -m nbexec.pools._procworker`` children, with adaptive chunking.

Children are plain subprocesses (no multiprocessing: no ``__main__`` re-import), fed over pipes
with length-prefixed cloudpickles. Idle children get chunks of about ``pending / (2 * workers)``
tasks (capped), so many small tasks are cheap while a few long ones still spread over every
child. Children report each task as it finishes and, once it has run ``_procworker.STARTED_AFTER``
seconds, also while it runs: a future with a ``set_started(t, where)`` hook (a ``SlimFuture``)
learns when and where its call really started (``set_running_or_notify_cancel`` is called here, at
dispatch). ``interrupt`` SIGKILLs the children running interrupted tasks and replaces them; a
child that dies on its own fails its running task and is replaced too. ``submit`` makes it a
``concurrent.futures.Executor`` for ``dask.multiprocessing.get``. Spawning a child and reading
its frames (the parent's side of its pipes) live in ``_procchild``.
"""

from __future__ import annotations

import itertools
import pickle
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

from ..runtime._pickling import dumps
from . import _procworker as pw
from ._procchild import (
    RemoteTraceback,
    TaskPicklingError,
    WorkerDiedError,
    _Child,
    _Task,
    call_hook,
    complete,
    on_event,
    read_frame,
    sigkill,
    spawn_child,
)
from ._threadpool import _finish, force_cancel

__all__ = ["ProcPool", "WorkerDiedError", "TaskPicklingError", "RemoteTraceback"]


class ProcPool(Executor):
    """``max_workers`` child processes; ``submit_to``/``submit`` run calls there, FIFO."""

    def __init__(self, max_workers: int, max_chunk: int = 128) -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
        self._max_workers = max_workers
        self._max_chunk = max_chunk
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: deque[_Task] = deque()
        self._children: list[_Child] = []
        self._idle: list[_Child] = []
        self._shutdown = self._closing = False
        self._tids = itertools.count()
        self._nstarting = 0
        self._broken: str | None = None
        # Children start as work needs them (a one-task run starts one child); one is started
        # now, without waiting for it, so the first task finds it (nearly) ready.
        self._add(self._spawn())

    # --- children --------------------------------------------------------------------------

    def _spawn(self) -> _Child:
        return spawn_child(self._reader)

    def _add(self, child: _Child) -> None:
        with self._lock:
            self._children.append(child)
            self._idle.append(child)
            chunks = self._take_chunks()
        self._send_chunks(chunks)

    @property
    def pids(self) -> list[int]:
        """PIDs of the live children."""
        return [c.pid for c in self._children]

    # --- dispatch --------------------------------------------------------------------------

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)`` in a child; returns a new ``Future``."""
        future: Future = Future()
        self.submit_to(future, fn, args, kwargs)
        return future

    def submit_to(self, future: Future, fn: Callable, args: tuple, kwargs: dict) -> None:
        """Schedule ``fn(*args, **kwargs)`` to complete the given pending ``future``."""
        task = _Task(future, fn, args, kwargs, next(self._tids))
        with self._lock:
            if self._shutdown or self._broken:
                raise RuntimeError(
                    self._broken or "cannot submit to a process pool that was shut down"
                )
            self._pending.append(task)
            grow = not self._idle and self._wanted()
            if grow:
                self._nstarting += 1
            if not self._idle:
                chunks = []
            else:
                chunks = self._take_chunks()
        if grow:
            self._grow()
        self._send_chunks(chunks)

    def _wanted(self) -> bool:
        """Under the lock: whether one more child would take pending work."""
        n = len(self._children) + self._nstarting
        return n < self._max_workers and len(self._pending) > self._nstarting

    def _grow(self) -> None:
        try:
            child = self._spawn()
        finally:
            with self._lock:
                self._nstarting -= 1
        if self._closing:
            sigkill(child.pid)
            child.proc.wait()
            return
        self._add(child)

    def _take_chunks(self) -> list[tuple[_Child, list[_Task]]]:
        """Under the lock: assign pending tasks to idle children."""
        out = []
        pending, idle = self._pending, self._idle
        while pending and idle:
            child = idle.pop()
            size = max(1, min(self._max_chunk, len(pending) // (2 * self._max_workers)))
            tasks: list[_Task] = []
            while pending and len(tasks) < size:
                t = pending.popleft()
                f = t.future
                if t.sent:
                    if f.done():
                        continue
                else:
                    try:
                        if not f.set_running_or_notify_cancel():
                            continue
                    except RuntimeError:
                        continue  # finished elsewhere
                    t.sent = True
                tasks.append(t)
            if not tasks:
                idle.append(child)
                continue
            child.inflight.extend(tasks)
            out.append((child, tasks))
        return out

    def _send_chunks(self, chunks: list[tuple[_Child, list[_Task]]]) -> None:
        while chunks:
            more: list = []
            for child, tasks in chunks:
                more += self._send(child, tasks)
            chunks = more

    def _send(self, child: _Child, tasks: list[_Task], split: bool = False) -> list:
        items = [(t.tid, t.fn, t.args, t.kwargs) for t in tasks]
        failed = []
        try:
            if split:
                raise ValueError("one frame per task")
            frames = [(len(tasks), dumps(items, protocol=5))]
        except BaseException:
            frames = []
            for t, item in zip(tasks, items, strict=True):
                try:
                    frames.append((1, dumps([item], protocol=5)))
                except BaseException as exc:
                    failed.append((t, exc))
        chunks: list = []
        with self._lock:
            for t, _ in failed:
                try:
                    child.inflight.remove(t)
                except ValueError:
                    pass
            child.sizes.extend(n for n, _ in frames)
            if failed and not child.inflight and child.alive and child not in self._idle:
                self._idle.append(child)
                chunks = self._take_chunks()
        for _, body in frames:
            child.write(pw.KIND_RUN, body)
        for t, cause in failed:
            err = TaskPicklingError(
                f"cannot pickle the function or arguments of task {t.key!r}: {cause!r}"
            )
            err.__cause__ = cause
            _finish(t.future, exc=err)
        return chunks

    # --- results ---------------------------------------------------------------------------

    def _reader(self, child: _Child) -> None:
        rfd = child.rfd
        try:
            while (frame := read_frame(rfd)) is not None:
                kind, body = frame
                frame = None
                if kind == pw.KIND_OK or kind == pw.KIND_ERR:
                    self._on_done(child, kind, body)
                elif kind == pw.KIND_STARTED:
                    self._on_started(child, body)
                elif kind == pw.KIND_OUTPUT:
                    self._on_output(child, body)
                elif kind == pw.KIND_EVENT:
                    on_event(body)
                elif kind == pw.KIND_READY:
                    child.ready.set()
                elif kind == pw.KIND_LOADFAIL:
                    self._on_loadfail(child, body)
                del body
        except OSError:
            pass
        finally:
            self._child_died(child)

    def _on_started(self, child: _Child, body: bytes) -> None:
        """A task has been executing for ``STARTED_AFTER`` s: tell its future, if it listens."""
        tid, t_start = pickle.loads(body)
        with self._lock:
            for task in child.inflight:  # the running task is the first
                if task.tid == tid:
                    future = task.future
                    break
            else:
                return  # finished or interrupted meanwhile
        call_hook(future, "set_started", t_start, child.where)

    def _on_output(self, child: _Child, body: bytes) -> None:
        """A part of what a running task printed: to its future, if it listens
        (``add_output_part``)."""
        tid, at, parts = pickle.loads(body)
        with self._lock:
            for task in child.inflight:
                if task.tid == tid:
                    future = task.future
                    break
            else:
                return
        call_hook(future, "add_output_part", at, parts)

    def _on_done(self, child: _Child, kind: int, body: bytes) -> None:
        chunks = None
        with self._lock:
            if not child.inflight:
                return  # killed by interrupt: its tasks were handled there
            task = child.inflight.popleft()
            child.sizes[0] -= 1
            if not child.sizes[0]:
                child.sizes.popleft()
            if not child.inflight and child.alive:
                self._idle.append(child)
                chunks = self._take_chunks()
                if self._shutdown:
                    self._cond.notify_all()
        if chunks:
            self._send_chunks(chunks)
        complete(task, child, kind, body)

    def _on_loadfail(self, child: _Child, body: bytes) -> None:
        text = pickle.loads(body)
        with self._lock:
            n = child.sizes.popleft() if child.sizes else 0
            tasks = [child.inflight.popleft() for _ in range(min(n, len(child.inflight)))]
            if n > 1:  # retry one by one to find the task(s) that cannot be loaded
                child.inflight.extendleft(reversed(tasks))
        if n > 1:
            self._send_chunks(self._send(child, tasks, split=True))
            return
        for t in tasks:
            err = TaskPicklingError(f"task {t.key!r} could not be unpickled in the worker:\n{text}")
            _finish(t.future, exc=err)
        with self._lock:
            if not child.inflight and child.alive and child not in self._idle:
                self._idle.append(child)
                chunks = self._take_chunks()
            else:
                chunks = []
        self._send_chunks(chunks)

    def _child_died(self, child: _Child) -> None:
        code = child.reap()
        failed: list[_Task] = []
        with self._lock:
            replace = child.alive and not self._closing
            if not child.ready.is_set() and not child.killed:
                self._broken = (
                    f"process pool worker {child.pid} exited with code {code} before it started "
                    "(see its stderr; `python -m nbexec.pools._procworker` must be importable)"
                )
                replace = False
                failed = list(child.inflight) + list(self._pending)
                child.inflight.clear()
                self._pending.clear()
            child.alive = False
            if child in self._children:
                self._children.remove(child)
            if child in self._idle:
                self._idle.remove(child)
            tasks = list(child.inflight)
            child.inflight.clear()
            self._pending.extendleft(reversed(tasks[1:]))
            self._cond.notify_all()
        if replace:
            self._add(self._spawn())
        for t in failed:
            _finish(t.future, exc=WorkerDiedError(self._broken))
        if tasks:
            t = tasks[0]
            msg = f"worker process {child.pid} died unexpectedly (exit code {code}) while running task {t.key!r}"
            _finish(t.future, exc=WorkerDiedError(msg))

    # --- interrupts and shutdown -----------------------------------------------------------

    def interrupt(self, futures: Iterable[Future]) -> None:
        """Cancel pending ``futures``; SIGKILL and replace the children running the others."""
        fs = set(futures)
        for f in fs:
            f.cancel()
        cancel, killed = [], []
        with self._lock:
            for child in list(self._children):
                if not any(t.future in fs for t in child.inflight):
                    continue
                child.alive, child.killed = False, True
                self._children.remove(child)
                if child in self._idle:
                    self._idle.remove(child)
                keep = [t for t in child.inflight if t.future not in fs]
                cancel += [t for t in child.inflight if t.future in fs]
                child.inflight.clear()
                self._pending.extendleft(reversed(keep))
                killed.append(child)
            replace = not self._closing
        for child in killed:
            sigkill(child.pid)
        for t in cancel:
            force_cancel(t.future)
        if replace:
            for _ in killed:
                self._add(self._spawn())

    def interrupt_all(self) -> None:
        """Interrupt every queued and running call."""
        with self._lock:
            fs = [t.future for t in self._pending]
            fs += [t.future for c in self._children for t in c.inflight]
        self.interrupt(fs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the children: after the queued and running work (``wait``), or at once."""
        with self._lock:
            self._shutdown = True
            pending = list(self._pending) if cancel_futures else []
        for t in pending:
            t.future.cancel()
        if wait:
            with self._cond:
                while self._pending or any(c.inflight for c in self._children):
                    chunks = self._take_chunks()
                    if chunks:
                        self._cond.release()
                        try:
                            self._send_chunks(chunks)
                        finally:
                            self._cond.acquire()
                    self._cond.wait(0.1)
                self._closing = True
                children = list(self._children)
            for c in children:
                c.close_write()  # EOF: the child exits
            for c in children:
                try:
                    c.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    c.proc.kill()
        else:
            self._kill_all()

    def _kill_all(self) -> None:
        with self._lock:
            self._shutdown = self._closing = True
            children = list(self._children)
            for c in children:
                c.alive = False
        for c in children:
            sigkill(c.pid)
        for c in children:
            c.proc.wait()
