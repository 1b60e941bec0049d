"""The ``%%executor`` cell rewrite: every call at the cell's top level goes through ``cellvalues.call``.

``f(a, *b, k=c)`` becomes ``__nbexec_call__(f, a, *b, k=c)`` at the same line and column (and the
operands of ``in`` tests go through ``cellvalues.value``), so a
task still returns its future at once while any other callable gets values. Bodies of functions,
lambdas and classes defined in the cell are left alone: they may run as tasks elsewhere, where
nbexec need not be installed (their decorators and default values, evaluated in the cell, are
rewritten). Operators, comparisons, truth tests, iteration and formatting need no rewrite: the
future itself acts as its result there (``TaskFuture``'s dunder methods), which costs code that
never meets a future nothing.
"""

from __future__ import annotations

import ast

from .cellvalues import CALL_NAME, CALL_NAMES, VALUE_NAME

__all__ = ["rewrite", "loaded_names", "top_level_names"]


class _Calls(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
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
    _Calls().visit(tree)
    return ast.fix_missing_locations(tree)


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
