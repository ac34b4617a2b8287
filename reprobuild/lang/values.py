"""Runtime values of the recipe language.

Python's own ``int``, ``float``, ``bool``, ``str`` and ``None`` stand for
themselves; lists, attribute sets, paths, functions and steps get small
classes. Laziness lives in :class:`Thunk`: a value is computed at most once,
and a thunk met again while it is being computed is infinite recursion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Union

from reprobuild.errors import SourceSpan

if TYPE_CHECKING:
    from reprobuild.lang import ast as A

Value = Union[int, float, bool, str, None, "PathValue", "ListValue", "AttrsValue",
              "Closure", "PrimOp", "StepValue"]  # fmt: skip


class Thunk:
    """A value not yet computed, or its result once forced."""

    __slots__ = ("env", "expr", "state", "value")

    UNFORCED = 0
    FORCING = 1
    DONE = 2

    def __init__(self, expr: A.Node | None, env: Env | None) -> None:
        self.expr = expr
        self.env = env
        self.state = Thunk.UNFORCED
        self.value: Value = None

    @classmethod
    def of(cls, value: Value) -> Thunk:
        t = cls(None, None)
        t.state = Thunk.DONE
        t.value = value
        return t


class Env:
    """A lexical scope. ``withs`` is the chain of ``with`` sets in force,
    consulted only after every lexical scope (``with`` never shadows)."""

    __slots__ = ("parent", "vars", "withs")

    def __init__(
        self,
        vars: dict[str, Thunk],
        parent: Env | None,
        withs: tuple[Thunk, object] | None = None,
    ) -> None:
        self.vars = vars
        self.parent = parent
        self.withs = withs

    def child(self, vars: dict[str, Thunk]) -> Env:
        return Env(vars, self, self.withs)


class Lazy(Thunk):
    """A thunk computed by a Python function (for builtins such as ``map``)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Value], span: SourceSpan | None = None) -> None:
        super().__init__(None, None)
        self.fn = fn


@dataclass(frozen=True)
class PathValue:
    """A file or directory named by a recipe, relative to the recipe tree.

    ``root`` is the top-level recipe's directory (absolute, on this machine);
    ``rel`` is the path below it. Only ``rel`` ever reaches an output, so the
    build directory never leaks.
    """

    root: str
    rel: PurePosixPath

    @property
    def absolute(self) -> str:
        return str(PurePosixPath(self.root) / self.rel)

    def display(self) -> str:
        s = str(self.rel)
        return "./" if s == "." else "./" + s


class ListValue:
    __slots__ = ("items",)

    def __init__(self, items: list[Thunk]) -> None:
        self.items = items


class AttrsValue:
    """An attribute set; ``spans`` remembers where each attribute was defined."""

    __slots__ = ("attrs", "spans")

    def __init__(self, attrs: dict[str, Thunk], spans: dict[str, SourceSpan] | None = None) -> None:
        self.attrs = attrs
        self.spans = spans or {}


class Closure:
    __slots__ = ("env", "node")

    def __init__(self, node: A.Lambda, env: Env) -> None:
        self.node = node
        self.env = env


class PrimOp:
    """A builtin function, possibly partially applied."""

    __slots__ = ("applied", "arity", "fn", "name")

    def __init__(
        self, name: str, arity: int, fn: Callable[..., Value], applied: tuple[Thunk, ...] = ()
    ) -> None:
        self.name = name
        self.arity = arity
        self.fn = fn
        self.applied = applied


class StepValue:
    """What a step constructor returns: a description of work, not its result.

    ``args`` stays lazy: the planner forces it, so a step that refers to
    itself through its arguments becomes a cycle the planner can name.
    """

    __slots__ = ("args", "hint", "kind", "span")

    def __init__(self, kind: str, args: AttrsValue, span: SourceSpan) -> None:
        self.kind = kind
        self.args = args
        self.span = span
        self.hint: str | None = None  # the first variable name it was read through

    def describe(self) -> str:
        return f"{self.kind} step at {self.span}"


def type_name(v: Any) -> str:
    """Nix-style type names, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a Boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a float"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, PathValue):
        return "a path"
    if isinstance(v, ListValue):
        return "a list"
    if isinstance(v, AttrsValue):
        return "a set"
    if isinstance(v, Closure | PrimOp):
        return "a function"
    if isinstance(v, StepValue):
        return f"a {v.kind} step"
    return type(v).__name__  # pragma: no cover
