"""The wrapper every run task executes, wherever it runs: re-exported from ``_nbexec_remote``.

The code lives in the top-level package ``_nbexec_remote`` (shipped with nbexec), so tasks pickle
it by reference and carry only their own data; Dask schedulers and workers without nbexec get
that package installed once by ``DaskExecutor.start()``.
"""

from __future__ import annotations

try:
    import _nbexec_remote
except ImportError:  # an editable install made before the package existed: load it by path
    import importlib.util
    import os
    import sys

    _path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "_nbexec_remote",
    )
    _spec = importlib.util.spec_from_file_location(
        "_nbexec_remote", os.path.join(_path, "__init__.py"), submodule_search_locations=[_path]
    )
    if _spec is None or _spec.loader is None or not os.path.isdir(_path):
        raise
    _nbexec_remote = importlib.util.module_from_spec(_spec)
    sys.modules["_nbexec_remote"] = _nbexec_remote
    _spec.loader.exec_module(_nbexec_remote)

from _nbexec_remote import (
    MAX_OUTPUT,
    PART_DELAY,
    STREAM_ATTR,
    AsyncCall,
    LiveOutput,
    MappedTaskCall,
    OutputBuffer,
    TaskCall,
    TaskInterrupted,
    call_in_task_body,
    call_quietly,
    call_with_timeout_of,
    contain,
    enter_task_thread,
    in_task_body,
    install_output_tee,
    keep_tail,
    output_sink,
    set_output_sink,
    where_of,
)

__all__ = ["in_task_body", "call_in_task_body", "where_of", "TaskCall", "MappedTaskCall",
           "OutputBuffer", "LiveOutput", "PART_DELAY", "install_output_tee", "STREAM_ATTR", "call_quietly", "call_with_timeout_of", "keep_tail", "MAX_OUTPUT", "contain",
           "AsyncCall", "task_body", "TaskInterrupted", "enter_task_thread", "output_sink",
           "set_output_sink"]  # fmt: skip


def task_body(fn):
    """What a task runs for ``fn``: ``fn`` itself, or an ``AsyncCall`` running its coroutine."""
    import inspect

    if inspect.iscoroutinefunction(fn) and not isinstance(fn, AsyncCall):
        return AsyncCall(fn)
    return fn
