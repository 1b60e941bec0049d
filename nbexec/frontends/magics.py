"""``%executor`` and ``%%executor``: parse the line, then call the session and run layers.

The magic's arguments are declared with IPython's ``magic_arguments`` from ``nbexec.config.options``' one
table (so ``%executor?`` documents every option) and parsed by ``options.parse_line``, the same code
that reads ``NBEXEC_EXECUTOR``. Lines are never variable-expanded or eval'd.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
from collections.abc import Set as AbstractSet
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    magics_class,
    no_var_expand,
    output_can_be_silenced,
)

from .. import session
from ..config.modes import validate
from ..config.options import COMMANDS, DISPLAY_OPTIONS, MODES, OPTIONS, LineError, parse_line
from ..core.futures import TaskFailed, TaskFuture, drop_internal_frames
from ..core.render import FinishedRun
from ..core.run import Run
from ..executors.base import iter_leaves
from . import run_commands
from .cellrewrite import loaded_names, rewrite, top_level_names
from .celltraceback import show_task_failure
from .cellvalues import HELPERS

__all__ = ["ExecutorMagics", "load_ipython_extension", "last_run"]

_MISSING = object()


def last_run() -> Run | FinishedRun | None:
    """The run of the most recent ``%%executor`` cell (None before any); a ``FinishedRun``
    (its last snapshot) once the run itself was freed."""
    return session.last_run()


def _declare_options(func: Any) -> Any:
    """Apply ``magic_arguments`` decorators for MODE and every option of ``nbexec.config.options``."""
    for option in reversed(OPTIONS + DISPLAY_OPTIONS):
        func = magic_arguments.argument(*option.flags, **option.argparse_kwargs())(func)
    mode_help = (
        f"one of: {', '.join(MODES)}. The line form also takes 'status' (print the session "
        "executor) and 'stop' (stop it); without MODE it shows the executor panel."
    )
    func = magic_arguments.argument("mode", nargs="?", metavar="MODE", help=mode_help)(func)
    return magic_arguments.magic_arguments()(func)


def _flag_list() -> str:
    return ", ".join("/".join(o.flags) for o in OPTIONS + DISPLAY_OPTIONS)


def _parse(line: str) -> tuple[str | None, dict[str, Any], dict[str, bool]]:
    """``(mode, executor options, display options)``; a bad line is a UsageError."""
    try:
        mode, options = parse_line(line, display_options=True)
    except LineError as exc:
        message = str(exc)
        if "unrecognized arguments" in message:
            message += f"; options: {_flag_list()}"
        raise UsageError(f"%executor: {message}") from None
    display: dict[str, bool] = {
        name: options.pop(name)
        for name in ("no_table", "dashboard", "background")
        if name in options
    }
    return mode, options, display


def _validate(mode: str | None, options: dict[str, Any]) -> None:
    """Check the options fit the mode before anything starts (UsageError otherwise).

    Under ``NBEXEC_EXECUTOR`` the notebook's mode and options are replaced, so only their syntax
    is checked (a CI machine need not have the notebook's cluster class installed).
    """
    try:
        if session.override() is None:
            validate(mode or session.current_mode()[0] or "local", options)
    except ValueError as exc:
        raise UsageError(f"%executor: {exc}") from None


def _has_futures(value: Any) -> bool:
    return any(True for _ in iter_leaves(value, lambda x: isinstance(x, TaskFuture)))


def _resolve_in_place(run: Run, container: Any) -> None:
    """Replace the successful futures inside ``container`` by their results, keeping the object."""
    resolved = run.resolve(container)
    if resolved is container:
        return
    if isinstance(container, list):
        container[:] = resolved
    elif isinstance(container, dict):
        container.update(resolved)
    else:
        container.clear()
        container.update(resolved)


_TOP_LEVEL_AWAIT = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0x2000)


def _run_sync(coro: Any) -> Any:
    """Run a coroutine that never suspends (a cell without top-level ``await``) to its end."""
    __tracebackhide__ = True
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("%%executor: the cell awaited without an event loop")


def _run_coroutine(coro: Any) -> Any:
    """Run a cell with top-level ``await`` when IPython did not run it as a coroutine."""
    __tracebackhide__ = True
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError(
        "%%executor: top-level await needs the cell to run through IPython's run_cell "
        "(with %load_ext nbexec and autoawait on)"
    )


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a module-level statement of the cell binds (not inside functions, classes, lambdas)."""
    return top_level_names(tree, ast.Store)


@magics_class
class ExecutorMagics(Magics):
    """``%executor`` and ``%%executor``."""

    @_declare_options
    @output_can_be_silenced
    @no_var_expand
    @line_cell_magic
    def executor(self, line: str = "", cell: str | None = None) -> Any:
        """Run a cell on the executor you pick, or switch, show or stop the session executor.

        %%executor [MODE] [OPTIONS]: make MODE/OPTIONS the session executor (reusing the current
        one when it matches; an option left out means "any"), run the cell inside a run on it with
        the live task table under the cell, then replace every name the cell bound to TaskFutures
        (also inside lists, tuples and dicts) by their results. A failed task raises TaskFailed.

        %executor MODE [OPTIONS] switches the session executor; %executor status prints it;
        %executor stop stops it; %executor alone shows the executor panel.
        %executor runs lists the kernel's runs; %executor show [N] shows a run's table again;
        %executor retry [N] re-runs the failed and cancelled tasks of the last run (or run N),
        keeps the results that succeeded and rebinds the names.
        NBEXEC_EXECUTOR in the environment replaces the modes and options written in the notebook.
        """
        __tracebackhide__ = True
        if cell is None:
            return self._line(line)
        return self._cell(line, cell)

    # --- %executor ----------------------------------------------------------------------------

    def _line(self, line: str) -> Any:
        words = line.split()
        if words and words[0] in run_commands.COMMANDS:
            return run_commands.run_command(self.shell, words)
        if words and words[0] in COMMANDS:
            if len(words) > 1:
                raise UsageError(f"%executor {words[0]} takes no options")
            if words[0] == "status":
                print(session.status().text())
            else:
                session.stop()
            return
        mode, options, display = _parse(line)
        if display:
            flags = ", ".join("--" + name.replace("_", "-") for name in display)
            raise UsageError(f"%executor: {flags} go with the cell magic %%executor")
        if mode is None:
            if options:
                raise UsageError(
                    f"%executor: name a mode before the options; valid modes: {', '.join(MODES)}"
                )
            self._panel()
            return
        _validate(mode, options)
        session.use(mode, **options)

    def _panel(self) -> None:
        from IPython.display import display

        from ..widgets.panel import ExecutorPanel

        display(ExecutorPanel())

    # --- %%executor ---------------------------------------------------------------------------

    def _cell(self, line: str, cell: str) -> Any:
        __tracebackhide__ = True
        mode, options, display = _parse(line)
        _validate(mode, options)
        if display.get("background"):
            return self._background_cell(mode, options, display, cell)
        prepared = self._compile(cell)
        if prepared[0].co_flags & inspect.CO_COROUTINE:  # top-level await, reached without
            return _run_coroutine(self._execute(mode, options, display, cell, *prepared))
        return _run_sync(self._execute(mode, options, display, cell, *prepared))

    async def _cell_async(self, line: str, cell: str) -> Any:
        """``%%executor`` for a cell with top-level ``await`` (see ``_await_transformer``)."""
        __tracebackhide__ = True
        mode, options, display = _parse(line)
        _validate(mode, options)
        if display.get("background"):
            return self._background_cell(mode, options, display, cell)
        return await self._execute(mode, options, display, cell, *self._compile(cell))

    async def _execute(self, mode, options, display, cell, body, last, names, loaded) -> Any:
        __tracebackhide__ = True
        run = Run(session.ensure(mode, **options))
        run.cell = cell
        from ..widgets.live import show_run  # widgets degrade to HTML/text without ipywidgets

        view = show_run(
            run, table=not display.get("no_table"), dashboard=bool(display.get("dashboard"))
        )
        shell = self.shell
        assert shell is not None  # IPython sets it before any magic runs
        ns = shell.user_ns
        glob = shell.user_global_ns
        before = dict(ns)
        value = None
        try:
            with run:
                done = eval(body, glob, ns)
                if inspect.iscoroutine(done):
                    await done
                if last is not None:
                    value = eval(last, glob, ns)
                    if inspect.iscoroutine(value) and last.co_flags & inspect.CO_COROUTINE:
                        value = await value
        except Exception as exc:
            with contextlib.suppress(Exception):  # never hide the cell's own error
                self._rebind(run, before, names, loaded)
            if isinstance(exc, TaskFailed) and any(f.key == exc.key for f in run.futures):
                show_task_failure(self.shell, exc)
                # End the traceback in the user's function, not in nbexec's run layer.
                raise exc.with_traceback(
                    getattr(exc.__cause__, "__traceback__", None)
                ) from exc.__cause__
            drop_internal_frames(exc)  # the cell's lines, then the user's functions
            raise
        finally:
            view.finish()
        rebound = self._rebind(run, before, names, loaded)
        if id(value) in rebound:
            return rebound[id(value)][1]
        return run.resolve(value) if _has_futures(value) else value

    def _background_cell(self, mode: str | None, options: dict, display: dict, cell: str) -> Any:
        """``%%executor MODE --background``: run the cell's code now, return without waiting."""
        __tracebackhide__ = True
        from . import background

        body, last, names, _ = self._compile(cell)
        return background.run_cell(self.shell, session.ensure(mode, **options), cell, body,
                                   last, names, table=not display.get("no_table"))  # fmt: skip

    def _compile(self, cell: str) -> tuple[Any, Any, set[str], set[str]]:
        """The cell as IPython would run it (transformed, cached for tracebacks, AST-transformed,
        top-level ``await`` allowed), its calls rewritten by ``cellrewrite``."""
        shell = self.shell
        assert shell is not None
        for name, helper in HELPERS.items():  # what the rewrite calls
            shell.user_global_ns[name] = helper
            shell.user_ns_hidden[name] = helper
        source = shell.transform_cell(cell)
        filename = shell.compile.cache(source, shell.execution_count, raw_code=cell)
        tree = shell.transform_ast(shell.compile.ast_parse(source, filename=filename))
        names = _bound_names(tree)
        loaded = loaded_names(tree)
        rewrite(tree)
        last = None
        with shell.compile.extra_flags(_TOP_LEVEL_AWAIT if shell.autoawait else 0):
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                expr = ast.Expression(tree.body.pop().value)
                # typeshed types codeop.Compile's source as str; like compile() it takes an AST.
                last = shell.compile(expr, filename, "eval")  # type: ignore[arg-type]
            body = shell.compile(tree, filename, "exec")
        return body, last, names, loaded

    def _rebind(
        self, run: Run, before: dict, names: set[str], loaded: AbstractSet[str] = frozenset()
    ) -> dict[int, tuple[Any, Any]]:
        """Replace names the cell bound to TaskFutures (or containers of them) by their results,
        and resolve in place the lists, dicts and sets it only read (``zs.append(add(x, y))``).

        Returns ``{id(old): (old, new)}`` (old kept alive so ids stay unique).
        """
        assert self.shell is not None
        ns = self.shell.user_ns
        for name in loaded - names:
            value = ns.get(name)
            if isinstance(value, (list, dict, set)) and _has_futures(value):
                _resolve_in_place(run, value)
        changed = {k for k, v in ns.items() if before.get(k, _MISSING) is not v}
        rebound: dict[int, tuple[Any, Any]] = {}
        for name in changed | (names & ns.keys()):
            value = ns[name]
            if id(value) not in rebound:
                if not _has_futures(value):
                    continue
                rebound[id(value)] = (value, run.resolve(value))
            ns[name] = rebound[id(value)][1]
        return rebound


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%executor`` and ``%%executor`` (``%load_ext nbexec``)."""
    ipython.register_magics(ExecutorMagics)
    if _await_transformer not in ipython.input_transformers_post:
        ipython.input_transformers_post.append(_await_transformer)


def _await_transformer(lines: list[str]) -> list[str]:
    """Run an ``%%executor`` cell with top-level ``await`` as a coroutine, as IPython runs a plain
    cell with ``await``: its ``run_cell_magic`` call becomes an awaited call of ``_cell_async``."""
    text = "".join(lines)
    if "run_cell_magic('executor'" not in text:
        return lines
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return lines
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return lines
    node = tree.body[0].value
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "run_cell_magic"
        and len(node.args) == 3
    ):
        return lines
    words = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if len(words) != 3 or words[0] != "executor":
        return lines
    from IPython.core.async_helpers import _should_be_async

    line, cell = words[1], words[2]
    try:
        from IPython import get_ipython

        source = get_ipython().transform_cell(cell)
    except Exception:
        return lines
    if not _should_be_async(source):
        return lines
    return [
        f"await get_ipython().find_cell_magic('executor').__self__._cell_async({line!r}, {cell!r})\n"
    ]
