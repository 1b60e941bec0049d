"""Code that reaches Dask schedulers and workers by value (cloudpickle), so they need nothing of nbexec.

What runs inside every task lives in the top-level package ``_nbexec_remote`` and pickles by
reference; this module installs it ONCE per scheduler and worker process: ``DaskExecutor.start()``
registers ``InstallScheduler`` and ``InstallWorker`` (by-value plugins carrying the sources of all
the package's modules and one digest of them; workers that join later run the worker plugin before
their first task). A process that can import the very same files imports them; any other gets the
package built from the sources into ``sys.modules`` under the client's file names, so tracebacks
name them.

This module imports only the standard library and distributed. It is also a worker preload file
(``dask_setup``) for clusters nbexec creates: worker processes ignore SIGINT, because Jupyter's
interrupt signals the kernel's whole process group.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.util
import multiprocessing
import os
import pkgutil
import signal
import sys
import threading
import types
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin, WorkerPlugin

PACKAGE = "_nbexec_remote"


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


def package_sources(spec: Any) -> dict[str, tuple[str, bytes]] | None:
    """``{module name: (file name, source)}`` of the package ``spec`` describes: its
    ``__init__`` and each module beside it (files or zip members); None if one cannot be read."""
    loader: Any = getattr(spec, "loader", None)
    locations = getattr(spec, "submodule_search_locations", None)
    origin = getattr(spec, "origin", None)
    if not locations or not origin or not hasattr(loader, "get_data"):
        return None
    folder = os.path.dirname(origin)
    try:
        sources = {spec.name: (origin, loader.get_data(origin))}
        for info in pkgutil.iter_modules(list(locations)):
            if info.ispkg:
                return None  # only flat packages ship
            filename = os.path.join(folder, info.name + ".py")
            sources[f"{spec.name}.{info.name}"] = (filename, loader.get_data(filename))
    except OSError:
        return None
    return sources


def digest_of(sources: dict[str, tuple[str, bytes]]) -> str:
    """The sha256 of a package's module names and sources (not their file names)."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        source = sources[name][1]
        digest.update(f"{name}\0{len(source)}\0".encode())
        digest.update(source)
    return digest.hexdigest()


# The package attribute holding the digest of the sources it was built from.
DIGEST_ATTR = "__nbexec_digest__"


class _Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A finder and loader (first on ``sys.meta_path`` while ``install_package`` runs) that builds
    a package's modules from their sources, compiled under the client's file names."""

    def __init__(self, package: str, sources: dict[str, tuple[str, bytes]]) -> None:
        self.package = package
        self.sources = sources

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.sources:
            return None
        return importlib.util.spec_from_loader(
            name, self, origin=self.sources[name][0], is_package=name == self.package
        )

    def create_module(self, spec: Any) -> None:
        return None  # the default module

    def exec_module(self, module: types.ModuleType) -> None:
        filename, source = self.sources[module.__name__]
        module.__file__ = filename
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)

    def get_source(self, name: str) -> str:  # for linecache (stack traces of running tasks)
        return self.sources[name][1].decode("utf-8")


def _loaded(package: str) -> dict[str, types.ModuleType]:
    return {k: m for k, m in sys.modules.items() if k == package or k.startswith(package + ".")}


def install_package(package: str, sources: dict[str, tuple[str, bytes]], digest: str) -> str:
    """Make ``sys.modules`` hold ``package`` and its modules built from ``sources`` (``digest``).

    Returns "present" (already there), "imported" (this process's own files are identical) or
    "installed" (built from ``sources``, replacing a different version if one was loaded).
    """
    module = sys.modules.get(package)
    if module is not None:
        if getattr(module, DIGEST_ATTR, None) == digest:
            return "present"
        local = package_sources(getattr(module, "__spec__", None))
        if local is not None and digest_of(local) == digest:
            setattr(module, DIGEST_ATTR, digest)
            return "present"
    else:
        local = package_sources(_find_spec(package))
        if local is not None and digest_of(local) == digest:
            module = importlib.import_module(package)
            setattr(module, DIGEST_ATTR, digest)
            return "imported"
    previous = _loaded(package)
    for name in previous:
        del sys.modules[name]
    finder = _Sources(package, sources)
    sys.meta_path.insert(0, finder)
    try:
        module = importlib.import_module(package)
        for name in sources:
            importlib.import_module(name)
    except BaseException:
        for name in _loaded(package):
            del sys.modules[name]
        sys.modules.update(previous)
        raise
    finally:
        sys.meta_path.remove(finder)
    setattr(module, DIGEST_ATTR, digest)
    return "installed"


class InstallWorker(WorkerPlugin):
    """Worker plugin: ``install_package`` at setup (on every worker, present and future)."""

    idempotent = True

    def __init__(self, package: str, sources: dict[str, tuple[str, bytes]], digest: str):
        self.args = (package, sources, digest)

    def setup(self, worker: Any) -> None:
        install_package(*self.args)


class InstallScheduler(SchedulerPlugin):
    """Scheduler plugin: ``install_package`` at start (the scheduler unpickles submitted graphs)."""

    idempotent = True

    def __init__(self, package: str, sources: dict[str, tuple[str, bytes]], digest: str):
        self.args = (package, sources, digest)

    async def start(self, scheduler: Any) -> None:  # the scheduler awaits it
        install_package(*self.args)


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
    spec = _find_spec(PACKAGE)
    if spec is None or spec.loader is None:
        return False
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except ImportError:
        return False
    return True
