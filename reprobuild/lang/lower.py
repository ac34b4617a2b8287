"""Surface syntax -> evaluation form for attribute sets and ``let``.

Merges nested keys (``a.b = 1; a.c = 2;`` is ``a = { b = 1; c = 2; }``),
resolves ``inherit``, and rejects duplicate attributes. It runs over the whole
tree right after parsing, so a duplicate is reported even where evaluation
would never look (as Nix does).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from reprobuild.errors import EvalError, SourceSpan
from reprobuild.lang import ast as A
from reprobuild.lang.suggest import variable_hint


@dataclass(frozen=True)
class LAttr:
    """One static attribute. ``inherited`` ones read the enclosing scope."""

    name: str
    value: A.Node
    inherited: bool
    span: SourceSpan


@dataclass(frozen=True)
class LDynamic:
    key: A.Node  # evaluates to the attribute name (a string or null)
    value: A.Node
    span: SourceSpan


@dataclass(frozen=True)
class LAttrs:
    rec: bool
    attrs: tuple[LAttr, ...]
    dynamic: tuple[LDynamic, ...]


class _Scope:
    __slots__ = ("names", "parent")

    def __init__(self, names: frozenset[str], parent: _Scope | None) -> None:
        self.names = names
        self.parent = parent

    def all_names(self) -> set[str]:
        out: set[str] = set()
        s: _Scope | None = self
        while s is not None:
            out |= s.names
            s = s.parent
        return out

    def has(self, name: str) -> bool:
        s: _Scope | None = self
        while s is not None:
            if name in s.names:
                return True
            s = s.parent
        return False


def static_name(name: A.AttrName) -> str | None:
    """The name if it is known without evaluation, else None."""
    if isinstance(name, str):
        return name
    if isinstance(name, A.Interp):  # ``${"a"}``: only a string, so static (as in Nix)
        return static_name(name.expr) if isinstance(name.expr, A.Str) else None
    if isinstance(name, A.Str) and all(isinstance(p, str) for p in name.parts):
        return "".join(p for p in name.parts if isinstance(p, str))
    return None


def dynamic_key(name: A.AttrName) -> A.Node:
    if isinstance(name, A.Interp):
        return name.expr
    assert isinstance(name, A.Str)
    return name


class Lowerer:
    """Caches the lowered form of each AttrSet/Let node (keyed by identity)."""

    def __init__(self, source_lines: dict[str, list[str]]) -> None:
        self.cache: dict[A.Node, LAttrs] = {}
        self.source_lines = source_lines
        self.builtin_names: frozenset[str] = frozenset()

    def error(self, message: str, span: SourceSpan) -> EvalError:
        lines = self.source_lines.get(span.file, [])
        src = lines[span.line - 1] if 0 < span.line <= len(lines) else None
        return EvalError(message, span, source_line=src)

    def check_tree(
        self, root: A.Node, globals_: frozenset[str], builtin_names: frozenset[str] = frozenset()
    ) -> None:
        """Lower every set and let in the tree (reporting duplicates) and bind
        every variable to a scope, so an undefined name is an error even in a
        branch evaluation would never take (as in Nix). Under ``with`` a name
        may come from the set, so it is checked at run time instead."""
        self.builtin_names = builtin_names
        self._check(root, _Scope(globals_, None), False)

    def _check(self, node: object, scope: _Scope, in_with: bool) -> None:
        if isinstance(node, A.Var):
            if not in_with and not scope.has(node.name):
                err = self.error(f"undefined variable '{node.name}'", node.span)
                err.hint = variable_hint(node.name, scope.all_names(), self.builtin_names)
                raise err
            return
        if isinstance(node, A.AttrSet | A.Let):
            lowered = self.lower(node)
            inner = scope
            if lowered.rec:
                inner = _Scope(frozenset(la.name for la in lowered.attrs), scope)
            for la in lowered.attrs:
                self._check(la.value, scope if la.inherited else inner, in_with)
            for d in lowered.dynamic:
                self._check(d.key, inner, in_with)
                self._check(d.value, inner, in_with)
            if isinstance(node, A.Let):
                self._check(node.body, inner, in_with)
            return
        if isinstance(node, A.Lambda):
            names: set[str] = set()
            if node.param is not None:
                names.add(node.param)
            if node.formals is not None:
                names.update(f.name for f in node.formals.formals)
                if node.param is not None and node.param in {f.name for f in node.formals.formals}:
                    raise self.error(
                        f"duplicate formal function argument '{node.param}'", node.span
                    )
            inner = _Scope(frozenset(names), scope)
            if node.formals is not None:
                for f in node.formals.formals:
                    if f.default is not None:
                        self._check(f.default, inner, in_with)
            self._check(node.body, inner, in_with)
            return
        if isinstance(node, A.With):
            self._check(node.env, scope, in_with)
            self._check(node.body, scope, True)
            return
        if isinstance(node, A.Node | A.IndPiece):
            for fld in dataclasses.fields(node):
                self._check(getattr(node, fld.name), scope, in_with)
        elif isinstance(node, tuple):
            for x in node:
                self._check(x, scope, in_with)

    def lower(self, node: A.AttrSet | A.Let) -> LAttrs:
        hit = self.cache.get(node)
        if hit is not None:
            return hit
        rec = node.rec if isinstance(node, A.AttrSet) else True
        result = self._lower(node.binds, rec, node.span, is_let=isinstance(node, A.Let))
        self.cache[node] = result
        return result

    def _lower(
        self, binds: tuple[A.Bind, ...], rec: bool, span: SourceSpan, is_let: bool
    ) -> LAttrs:
        # name -> (value node or list of nested binds, span, inherited)
        static: dict[str, LAttr] = {}
        nested: dict[str, list[A.Bind]] = {}
        nested_span: dict[str, SourceSpan] = {}
        nested_rec: set[str] = set()  # merged into a ``rec`` set
        order: list[str] = []
        dynamic: list[LDynamic] = []

        def define(name: str, value: A.Node, inherited: bool, sp: SourceSpan) -> None:
            if name in static or name in nested:
                first = static[name].span if name in static else nested_span[name]
                raise self.error(f"attribute '{name}' already defined at {first}", sp)
            static[name] = LAttr(name, value, inherited, sp)
            order.append(name)

        for b in binds:
            if isinstance(b, A.Inherit):
                for n in b.names:
                    name = static_name(n)
                    assert name is not None  # the parser refuses dynamic inherits
                    if b.source is None:
                        define(name, A.Var(name, span=b.span), True, b.span)
                    else:
                        define(name, A.Select(b.source, (name,), span=b.span), False, b.span)
                continue
            head = b.path[0]
            name = static_name(head)
            if name is None:
                if is_let:
                    raise self.error("dynamic attributes are not allowed in let", b.span)
                value = (
                    b.value
                    if len(b.path) == 1
                    else A.AttrSet(
                        False, (A.Binding(b.path[1:], b.value, span=b.span),), span=b.span
                    )
                )
                dynamic.append(LDynamic(dynamic_key(head), value, b.span))
                continue
            if len(b.path) == 1:
                value = b.value
                if name in nested:
                    # a.b = 1; a = { c = 2; };  -> merge when the value is a set; a
                    # later ``rec`` is dropped, as Nix does (NixOS/nix#9020)
                    if isinstance(value, A.AttrSet):
                        nested[name].extend(value.binds)
                        continue
                    raise self.error(
                        f"attribute '{name}' already defined at {nested_span[name]}", b.span
                    )
                if name in static and not static[name].inherited:
                    prev = static[name].value
                    if (
                        isinstance(prev, A.AttrSet)
                        and not prev.rec
                        and isinstance(value, A.AttrSet)
                        and not value.rec
                    ):
                        del static[name]
                        nested[name] = [*prev.binds, *value.binds]
                        nested_span[name] = prev.span
                        continue
                define(name, value, False, b.span)
                continue
            rest = A.Binding(b.path[1:], b.value, span=b.span)
            if name in static:
                prev = static[name].value
                if static[name].inherited or not isinstance(prev, A.AttrSet):
                    raise self.error(
                        f"attribute '{name}' already defined at {static[name].span}", b.span
                    )
                # ``a = rec { ... }; a.c = ...;`` stays one rec set, as in Nix
                # (which keeps it for compatibility: NixOS/nix#9020).
                del static[name]
                nested[name] = [*prev.binds, rest]
                nested_span[name] = prev.span
                if prev.rec:
                    nested_rec.add(name)
                continue
            if name not in nested:
                nested[name] = []
                nested_span[name] = b.span
                order.append(name)
            nested[name].append(rest)

        attrs: list[LAttr] = []
        for name in order:
            if name in static:
                attrs.append(static[name])
            elif name in nested:
                sp = nested_span[name]
                synthetic = A.AttrSet(name in nested_rec, tuple(nested[name]), span=sp)
                attrs.append(LAttr(name, synthetic, False, sp))
        return LAttrs(rec, tuple(attrs), tuple(dynamic))
