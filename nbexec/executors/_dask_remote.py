"""Code that reaches Dask schedulers and workers by value (cloudpickle), so they need nothing of nbexec.

What runs inside every task lives in the top-level module ``_nbexec_remote`` and pickles by
reference; this module installs it ONCE per scheduler and worker process: ``DaskExecutor.start()``
registers ``InstallScheduler`` and ``InstallWorker`` (by-value plugins carrying the module's
source; workers that join later run the worker plugin before their first task). A process that
can import the very same file imports it; any other gets the source exec'd into
``sys.modules["_nbexec_remote"]`` under the client's file name, so tracebacks name it.

This module imports only the standard library and distributed. It is also a worker preload file
(``dask_setup``) for clusters nbexec creates: worker processes ignore SIGINT, because Jupyter's
interrupt signals the kernel's whole process group.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import multiprocessing
import signal
import sys
import threading
import types
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

MODULE = "_nbexec_remote"


def dask_setup(worker: Any) -> None:
    """Worker preload: a worker process started by a nanny ignores SIGINT (never the kernel)."""
    if (
        threading.current_thread() is threading.main_thread()
        and multiprocessing.parent_process() is not None
    ):
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _find_spec(name: str) -> Any:
    """The spec an ``import name`` would use, ignoring ``sys.modules``."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, None)
        except Exception:  # noqa: BLE001 - a broken finder must not stop the search
            continue
        if spec is not None:
            return spec
    return None


def _digest_of_file(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


# The module attribute holding the sha256 of the source a module was built from.
DIGEST_ATTR = "__nbexec_digest__"


def install_module(name: str, source: bytes, filename: str, digest: str) -> str:
    """Make ``sys.modules[name]`` the module built from ``source`` (sha256 ``digest``) in this process.

    Returns "present" (already there), "imported" (this process's own file is identical) or
    "installed" (``source`` exec'd; it replaces a different version if one was loaded).
    """
    module = sys.modules.get(name)
    if module is not None:
        if getattr(module, DIGEST_ATTR, None) == digest:
            return "present"
        if _digest_of_file(getattr(module, "__file__", None)) == digest:
            setattr(module, DIGEST_ATTR, digest)
            return "present"
    else:
        spec = _find_spec(name)
        if spec is not None and _digest_of_file(spec.origin) == digest:
            module = importlib.import_module(name)
            setattr(module, DIGEST_ATTR, digest)
            return "imported"
    module = types.ModuleType(name)
    module.__file__ = filename
    code = compile(source, filename, "exec", dont_inherit=True)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    setattr(module, DIGEST_ATTR, digest)
    return "installed"


class InstallWorker(WorkerPlugin):
    """Worker plugin: ``install_module`` at setup (on every worker, present and future)."""

    idempotent = True

    def __init__(self, name: str, source: bytes, filename: str, digest: str):
        self.args = (name, source, filename, digest)

    def setup(self, worker: Any) -> None:
        install_module(*self.args)


class InstallScheduler(SchedulerPlugin):
    """Scheduler plugin: ``install_module`` at start (the scheduler unpickles submitted graphs)."""

    idempotent = True

    def __init__(self, name: str, source: bytes, filename: str, digest: str):
        self.args = (name, source, filename, digest)

    async def start(self, scheduler: Any) -> None:  # the scheduler awaits it
        install_module(*self.args)


def worker_has_nbexec(dask_worker: Any = None) -> bool:
    """Whether this process could import ``nbexec`` or ``_nbexec_remote`` by itself.

    Tests use it to prove that workers lack both. A module installed by ``InstallWorker`` does not
    count: the check looks for the files an import would load, and runs them in a scratch module.
    """
    try:
        __import__("nbexec")
    except ImportError:
        pass
    else:
        return True
    spec = _find_spec(MODULE)
    if spec is None or spec.loader is None:
        return False
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except ImportError:
        return False
    return True
