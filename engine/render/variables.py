"""The static variable check of templates: which dotted paths a template reads that the outcome catalog does not know."""
from __future__ import annotations

from functools import lru_cache
from typing import Any
from collections.abc import Iterable, Sequence

from jinja2 import nodes

from engine.render.sandbox import GLOBAL_NAMES

__all__ = ["VarWalker"]



def _targets(node: nodes.Node) -> set:
    return {n.name for n in node.find_all(nodes.Name) if n.ctx in ("store", "param")} | (
        {node.name} if isinstance(node, nodes.Name) else set())


def _bindings(body: Iterable[nodes.Node]) -> set:
    """Names bound directly in a scope: set, macro, import, and the same inside if (no new scope)."""
    out: set = set()
    for node in body:
        if isinstance(node, (nodes.Assign, nodes.AssignBlock)):
            out |= _targets(node.target)
        elif isinstance(node, nodes.Macro):
            out.add(node.name)
        elif isinstance(node, nodes.Import):
            out.add(node.target)
        elif isinstance(node, nodes.FromImport):
            out |= {n[1] if isinstance(n, tuple) else n for n in node.names}
        elif isinstance(node, nodes.If):
            out |= _bindings(node.body)
            for elif_ in node.elif_:
                out |= _bindings(elif_.body)
            out |= _bindings(node.else_)
        elif isinstance(node, (nodes.Scope, nodes.ScopedEvalContextModifier)):
            out |= _bindings(node.body)
    return out


def _chain(node: nodes.Node) -> tuple[list, nodes.Node]:
    """Dotted parts of a Getattr / constant-Getitem chain, innermost first, and the node it starts at."""
    parts: list = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, str):
            parts.append(node.arg.value)
            node = node.node
        else:
            break
    parts.reverse()
    return parts, node


@lru_cache(maxsize=16)
def _leaves(catalog: Any) -> frozenset:
    """Catalog paths that have no sub-fields (strings, numbers, lists)."""
    paths = sorted(catalog.paths)
    return frozenset(p for p in paths if not any(q.startswith(p + ".") for q in paths))


_METHODS = frozenset(m for t in (str, dict, list) for m in dir(t) if not m.startswith("_"))


class VarWalker:
    """Finds variable paths a template reads that the catalog does not know."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.found: list = []  # (lineno, path, root, suggestion)
        self._leaves = _leaves(catalog)

    def _known(self, parts: list, called: bool) -> bool:
        path = ".".join(parts)
        if self.catalog.knows(path):
            return True
        if called and len(parts) > 1 and parts[-1] in _METHODS and self.catalog.knows(".".join(parts[:-1])):
            return True  # a method of a known value: candidate.items(), position.title.upper()
        for n in range(len(parts) - 1, 0, -1):  # an attribute of a known leaf value (a string, a list)
            prefix = ".".join(parts[:n])
            if self.catalog.knows(prefix):
                return prefix in self._leaves and prefix not in self.catalog.free
        return False

    def expr(self, node: nodes.Node, scope: frozenset, called: bool = False) -> None:
        if isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Name)):
            parts, root = _chain(node)
            if isinstance(root, nodes.Name):
                if root.ctx == "load" and root.name not in scope and root.name not in GLOBAL_NAMES:
                    full = [root.name] + parts
                    if not self._known(full, called):
                        n = 1
                        while n < len(full) and self.catalog.knows(".".join(full[:n])):
                            n += 1
                        bad = ".".join(full[:n])
                        self.found.append((root.lineno, bad, root.name, self.catalog.suggest(bad)))
                return
            self.visit(root, scope)
            # the non-constant subscripts of the chain are expressions of their own
            cur: nodes.Node = node
            while isinstance(cur, (nodes.Getattr, nodes.Getitem)):
                if isinstance(cur, nodes.Getitem):
                    self.visit(cur.arg, scope)
                cur = cur.node
            return
        self.visit(node, scope)

    def body(self, body: Sequence[nodes.Node], scope: frozenset) -> None:
        inner = scope | _bindings(body)
        for child in body:
            self.visit(child, inner)

    def visit(self, node: nodes.Node, scope: frozenset) -> None:
        child: nodes.Node | None
        if isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Name)):
            if isinstance(node, nodes.Getitem) and not (
                    isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
                self.expr(node.node, scope)
                self.visit(node.arg, scope)
                return
            self.expr(node, scope)
        elif isinstance(node, nodes.Call):
            self.expr(node.node, scope, called=True)
            for child in list(node.args) + list(node.kwargs) + [node.dyn_args, node.dyn_kwargs]:
                if child is not None:
                    self.visit(child, scope)
        elif isinstance(node, nodes.Template):
            self.body(node.body, scope)
        elif isinstance(node, nodes.For):
            self.visit(node.iter, scope)
            inner = scope | _targets(node.target) | {"loop"}
            if node.test is not None:
                self.visit(node.test, inner)
            self.body(node.body, inner)
            self.body(node.else_, scope)
        elif isinstance(node, (nodes.Macro, nodes.CallBlock)):
            if isinstance(node, nodes.CallBlock):
                self.visit(node.call, scope)
            for default in node.defaults:
                self.visit(default, scope)
            inner = scope | {a.name for a in node.args} | {"varargs", "kwargs", "caller"}
            self.body(node.body, inner)
        elif isinstance(node, nodes.With):
            for value in node.values:
                self.visit(value, scope)
            inner = scope | set().union(*(_targets(t) for t in node.targets)) if node.targets else scope
            self.body(node.body, inner)
        elif isinstance(node, nodes.Block):
            self.body(node.body, scope)
        elif isinstance(node, (nodes.If,)):
            self.visit(node.test, scope)
            for child in node.body:
                self.visit(child, scope)
            for elif_ in node.elif_:
                self.visit(elif_, scope)
            for child in node.else_:
                self.visit(child, scope)
        elif isinstance(node, (nodes.Assign,)):
            self.visit(node.node, scope)
        elif isinstance(node, nodes.AssignBlock):
            if node.filter is not None:
                self.visit(node.filter, scope)
            self.body(node.body, scope)
        elif isinstance(node, nodes.FilterBlock):
            self.visit(node.filter, scope)
            self.body(node.body, scope)
        elif isinstance(node, (nodes.Filter, nodes.Test)):
            if node.node is not None:
                self.visit(node.node, scope)
            for child in list(node.args) + list(node.kwargs) + [node.dyn_args, node.dyn_kwargs]:
                if child is not None:
                    self.visit(child, scope)
        elif isinstance(node, nodes.NSRef):
            return
        else:
            for child in node.iter_child_nodes():
                self.visit(child, scope)
