"""The ``%%executor`` cell rewrite: every call at the cell's top level goes through ``cellvalues.call``.

``f(a, *b, k=c)`` becomes ``__nbexec_call__(f, a, *b, k=c)`` at the same line and column (and the
operands of ``in`` tests go through ``cellvalues.value``), so a
task still returns its future at once while any other callable gets values. Calls of builtins
that reach a future's value through its protocols anyway (``abs(x)``, ``len(x)``, see
``PROTOCOL_BUILTINS``) are left as calls, by an alias. Bodies of functions,
lambdas and classes defined in the cell are left alone: they may run as tasks elsewhere, where
nbexec need not be installed (their decorators and default values, evaluated in the cell, are
rewritten). Operators, comparisons, truth tests, iteration and formatting need no rewrite: the
future itself acts as its result there (``TaskFuture``'s dunder methods), which costs code that
never meets a future nothing.
"""

from __future__ import annotations

import ast

from .cellvalues import BUILTINS_NAME, CALL_NAME, CALL_NAMES, VALUE_NAME, builtin_alias

__all__ = ["rewrite", "loaded_names", "top_level_names"]

#: Builtins that use their arguments only through the protocols a future forwards to its result
#: (``__abs__``, ``__len__``, ``__index__``...), with the numbers of positional arguments for
#: which that holds: called with a future they give what they give with its value, so a call of
#: one of them needs no ``__nbexec_call__`` (a Python frame per call in a loop). The cell calls
#: them by an alias that its first statement binds to the builtin, or to ``call(f)`` where the
#: name means something else in the user's namespace.
PROTOCOL_BUILTINS = {
    "abs": (1,), "len": (1,), "bool": (1,), "int": (1,), "float": (1,), "round": (1, 2),
    "divmod": (2,), "range": (1, 2, 3), "chr": (1,), "hex": (1,), "oct": (1,), "bin": (1,),
}  # fmt: skip


class _Calls(ast.NodeTransformer):
    def __init__(self, bound: set[str]) -> None:
        self.bound = bound  # names the cell binds somewhere: never taken for builtins
        self.builtins: set[str] = set()

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if (
            isinstance(func, ast.Name)
            and len(node.args) in PROTOCOL_BUILTINS.get(func.id, ())
            and func.id not in self.bound
            and not node.keywords
            and not any(isinstance(a, ast.Starred) for a in node.args)
        ):
            self.builtins.add(func.id)
            node.func = ast.copy_location(ast.Name(id=builtin_alias(func.id), ctx=ast.Load()), func)
            return node
        plain = not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args)
        name = (
            CALL_NAMES[len(node.args)] if plain and len(node.args) < len(CALL_NAMES) else CALL_NAME
        )
        func = ast.Name(id=name, ctx=ast.Load())
        ast.copy_location(func, node.func)
        new = ast.Call(func=func, args=[node.func, *node.args], keywords=node.keywords)
        return ast.copy_location(new, node)

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):  # hashed containers
            node.left = _value(node.left)
            node.comparators = [_value(c) for c in node.comparators]
        return node

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.keys = [None if k is None else _value(k) for k in node.keys]  # keys are hashed
        return node

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        self.generic_visit(node)
        node.key = _value(node.key)
        return node

    def _definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        args = node.args
        args.defaults = [self.visit(d) for d in args.defaults]
        args.kw_defaults = [None if d is None else self.visit(d) for d in args.kw_defaults]
        return node

    visit_FunctionDef = _definition
    visit_AsyncFunctionDef = _definition

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.bases = [self.visit(b) for b in node.bases]
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return node


def _value(node: ast.expr) -> ast.expr:
    func = ast.copy_location(ast.Name(id=VALUE_NAME, ctx=ast.Load()), node)
    return ast.copy_location(ast.Call(func=func, args=[node], keywords=[]), node)


def rewrite(tree: ast.Module) -> ast.Module:
    """Rewrite the calls of a cell's module tree in place (see the module docstring)."""
    calls = _Calls(_bound_anywhere(tree))
    calls.visit(tree)
    if calls.builtins:  # bind the aliases first (after ``from __future__`` imports)
        names = ast.Tuple(elts=[ast.Constant(n) for n in sorted(calls.builtins)], ctx=ast.Load())
        call = ast.Call(func=ast.Name(id=BUILTINS_NAME, ctx=ast.Load()), args=[names], keywords=[])
        at = 0
        while at < len(tree.body) and _is_future_import(tree.body[at]):
            at += 1
        first = tree.body[at] if at < len(tree.body) else tree.body[-1]
        tree.body.insert(at, ast.copy_location(ast.Expr(value=call), first))
    return ast.fix_missing_locations(tree)


def _is_future_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def _bound_anywhere(tree: ast.Module) -> set[str]:
    """Every name the cell binds or deletes, at any depth (also ``global`` ones, imports, defs)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def top_level_names(tree: ast.Module, ctx: type[ast.expr_context]) -> set[str]:
    """Names the cell's top-level code reads (``ast.Load``) or binds (``ast.Store``), not inside
    functions, classes or lambdas."""
    names: set[str] = set()
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ctx):
            names.add(node.id)
        if not isinstance(node, nested):
            todo.extend(ast.iter_child_nodes(node))
    return names


def loaded_names(tree: ast.Module) -> set[str]:
    """Names the cell's top-level code reads."""
    return top_level_names(tree, ast.Load)
