"""Syntax tree of the recipe language: frozen nodes, each with its source span.

The tree keeps the surface syntax (``a.b.c = 1;`` stays a three-part path,
``inherit`` stays an inherit) so ``fmt`` can print what the user wrote;
:mod:`reprobuild.lang.lower` derives the evaluation form from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reprobuild.errors import SourceSpan


@dataclass(frozen=True, eq=False)
class Node:
    span: SourceSpan = field(repr=False, kw_only=True)


@dataclass(frozen=True, eq=False)
class Int(Node):
    value: int


@dataclass(frozen=True, eq=False)
class Float(Node):
    value: float
    text: str


@dataclass(frozen=True, eq=False)
class Path(Node):
    text: str  # as written, e.g. "./files/motd"


@dataclass(frozen=True, eq=False)
class Interp(Node):
    """``${ expr }`` inside a string or as an attribute name."""

    expr: Node


@dataclass(frozen=True, eq=False)
class Str(Node):
    """A double-quoted string: decoded text pieces and interpolations."""

    parts: tuple[str | Interp, ...]


@dataclass(frozen=True, eq=False)
class IndPiece:
    """A piece of an indented string: raw text (subject to indentation
    stripping) or an escape such as ``''$`` (not stripped)."""

    text: str
    escaped: bool
    raw: str  # exactly as written, for fmt


@dataclass(frozen=True, eq=False)
class IndStr(Node):
    parts: tuple[IndPiece | Interp, ...]
    opening: str  # the "''" plus the swallowed first blank line, for fmt


@dataclass(frozen=True, eq=False)
class Var(Node):
    name: str


# An attribute name: a plain identifier, a string (possibly interpolated) or ${ }.
AttrName = str | Str | Interp


@dataclass(frozen=True, eq=False)
class Select(Node):
    expr: Node
    path: tuple[AttrName, ...]
    default: Node | None = None


@dataclass(frozen=True, eq=False)
class HasAttr(Node):
    expr: Node
    path: tuple[AttrName, ...]


@dataclass(frozen=True, eq=False)
class List(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class Binding(Node):
    path: tuple[AttrName, ...]
    value: Node


@dataclass(frozen=True, eq=False)
class Inherit(Node):
    names: tuple[AttrName, ...]
    source: Node | None = None  # inherit (source) names;


Bind = Binding | Inherit


@dataclass(frozen=True, eq=False)
class AttrSet(Node):
    rec: bool
    binds: tuple[Bind, ...]


@dataclass(frozen=True, eq=False)
class Let(Node):
    binds: tuple[Bind, ...]
    body: Node


@dataclass(frozen=True, eq=False)
class With(Node):
    env: Node
    body: Node


@dataclass(frozen=True, eq=False)
class If(Node):
    cond: Node
    then: Node
    else_: Node


@dataclass(frozen=True, eq=False)
class Assert(Node):
    cond: Node
    body: Node


@dataclass(frozen=True, eq=False)
class Formal(Node):
    name: str
    default: Node | None = None


@dataclass(frozen=True, eq=False)
class Formals(Node):
    formals: tuple[Formal, ...]
    ellipsis: bool


@dataclass(frozen=True, eq=False)
class Lambda(Node):
    """``x: body``, ``{ a, b ? 1, ... }: body``, ``x@{ ... }: body``."""

    param: str | None
    formals: Formals | None
    body: Node
    at_first: bool = False  # "x@{...}" rather than "{...}@x" (fmt only)


@dataclass(frozen=True, eq=False)
class Apply(Node):
    fn: Node
    arg: Node


@dataclass(frozen=True, eq=False)
class BinOp(Node):
    op: str  # the operator as written: "+", "//", "->", ...
    left: Node
    right: Node


@dataclass(frozen=True, eq=False)
class UnOp(Node):
    op: str  # "!" or "-"
    expr: Node


@dataclass(frozen=True, eq=False)
class Paren(Node):
    """Parentheses, kept for fmt; evaluation looks through them."""

    expr: Node
