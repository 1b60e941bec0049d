"""nbexec's code that runs inside tasks, wherever they run: shipped ONCE per process, not per task.

A top-level package of the nbexec distribution (pyproject.toml), so task wrappers pickle BY
REFERENCE (``_nbexec_remote._taskcall.TaskCall``, the class's own module): a task carries only its
own data (task id, function, arguments), never nbexec's code. Where nbexec is installed (the
kernel, process-pool children, LocalCluster workers) it is imported normally. On a Dask scheduler
and workers that lack it, ``DaskExecutor.start()`` installs the sources of all its modules once per
process (a scheduler plugin and a worker plugin, so workers that join later get them too): see
``nbexec.executors._dask_remote``.

Its modules import only the standard library and each other at module level (``distributed`` is
looked up lazily): process-pool children import it without loading distributed.

- ``_exits``: the exceptions raised inside tasks, and ``contain``;
- ``_context``: whether this thread is inside a task body, and on which Dask worker;
- ``_output``: capturing what a task prints;
- ``_timeouts``: stopping a task that ran past its timeout;
- ``_events``: ``Emitter``, the task events on their way to the kernel;
- ``_taskcall``: ``TaskCall`` and ``MappedTaskCall``, the wrapper every task runs;
- ``_stopping``: a Dask worker's stop flags and interrupts;
- ``_byvalue``: ``ByValue`` and ``MapCall``, the user's function shipped by value.

``nbexec.runtime._taskcall`` re-exports the task wrappers; ``nbexec.executors.dask`` uses the Dask
helpers. Per-thread state lives on the Thread object and per-worker state on the ``Worker`` object
(``_nbexec_stopped``, ``_nbexec_events``): two copies of this package in one process (e.g. a
reinstall on a long-lived worker) then still share it.
"""

from ._byvalue import ByValue, MapCall
from ._context import call_in_task_body, enter_task_thread, in_task_body, where_of
from ._events import FLUSH_DELAY, Emitter
from ._exits import TaskExit, TaskInterrupted, TaskNotStarted, TaskTimeout, contain
from ._output import (
    MAX_OUTPUT,
    PART_DELAY,
    STREAM_ATTR,
    LiveOutput,
    OutputBuffer,
    OutputTee,
    call_quietly,
    install_output_tee,
    keep_tail,
    output_sink,
    set_output_sink,
)
from ._stopping import interrupt_keys, release_threads, run_task, still_running, stop_token
from ._taskcall import AsyncCall, MappedTaskCall, TaskCall
from ._timeouts import call_with_timeout, call_with_timeout_of

__all__ = [
    "in_task_body", "call_in_task_body", "enter_task_thread", "where_of", "output_sink",
    "set_output_sink", "TaskCall", "MappedTaskCall", "AsyncCall",
    "TaskExit", "TaskInterrupted", "TaskTimeout", "TaskNotStarted", "contain",
    "OutputBuffer", "LiveOutput", "OutputTee", "PART_DELAY", "MAX_OUTPUT", "STREAM_ATTR",
    "install_output_tee", "call_quietly", "keep_tail", "call_with_timeout", "call_with_timeout_of",
    "run_task", "MapCall", "ByValue", "Emitter", "FLUSH_DELAY",
    "stop_token", "interrupt_keys", "still_running", "release_threads",
]  # fmt: skip
