"""The table of builtin functions: name, arguments, documentation, code.

Nix registers each primop with its name, argument names and documentation
(``RegisterPrimOp{.name, .args, .doc, .fun}``); so does reprobuild, so that
``docs/builtins.md`` is generated from the same table the evaluator uses and
cannot drift from it. Modules ``builtins_*.py`` fill the table when imported;
:func:`reprobuild.lang.builtins.make_base_env` imports them all.

An implementation is called as ``impl(ev, span, *args)`` with each argument a
:class:`~reprobuild.lang.values.Thunk`, once all ``len(args)`` arguments are
there; it forces only what its Nix counterpart forces.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reprobuild.errors import EvalError, SourceSpan
from reprobuild.lang.values import AttrsValue, Closure, PrimOp, Thunk, Value, type_name

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

# A step of evaluation (see limits.max_steps) is worth this many list or set
# elements copied by a builtin.
WORK_PER_STEP = 64

Impl = Callable[..., Value]


@dataclass(frozen=True)
class Builtin:
    """One row of the table."""

    name: str
    args: tuple[str, ...]  # argument names, as Nix's documentation gives them
    doc: str  # the first line is a summary; Markdown
    impl: Impl
    bare: bool  # also in scope without ``builtins.`` (as in Nix)
    group: str  # the section of docs/builtins.md

    @property
    def arity(self) -> int:
        return len(self.args)


TABLE: dict[str, Builtin] = {}


def builtin(
    name: str, *args: str, bare: bool = False, group: str = "misc"
) -> Callable[[Impl], Impl]:
    """Register the decorated ``impl(ev, span, *args)``; its docstring is the doc."""

    def deco(fn: Impl) -> Impl:
        if name in TABLE:  # pragma: no cover - a programming error
            raise AssertionError(f"builtin {name!r} registered twice")
        doc = inspect.cleandoc(fn.__doc__ or "")
        if not doc:  # pragma: no cover - a programming error
            raise AssertionError(f"builtin {name!r} has no documentation")
        TABLE[name] = Builtin(name, args, doc, fn, bare, group)
        return fn

    return deco


class Throw(EvalError):
    """``throw``: a user error raised on purpose by a recipe (``tryEval`` catches it)."""


class Abort(EvalError):
    """``abort``: evaluation stopped on purpose by a recipe (nothing catches it)."""


class AssertionFailed(EvalError):
    """``assert`` on false (``tryEval`` catches it, as Nix's AssertionError)."""


def applier(ev: Evaluator, fn: Value, x: Thunk, span: SourceSpan) -> Callable[[], Value]:
    """``fn x``, later (for lazy list elements)."""
    return lambda: ev.apply(fn, x, span)


def applier2(
    ev: Evaluator, fn: Value, a: Thunk, b: Thunk, span: SourceSpan
) -> Callable[[], Value]:
    """``fn a b``, later."""
    return lambda: ev.apply(ev.apply(fn, a, span), b, span)


def force_function(ev: Evaluator, t: Thunk, span: SourceSpan) -> Value:
    """Force a function argument (a functor set counts), as Nix's forceFunction."""
    v = ev.force(t)
    if isinstance(v, Closure | PrimOp) or (isinstance(v, AttrsValue) and "__functor" in v.attrs):
        return v
    raise ev.error(f"value is {type_name(v)} while a function was expected", span)


def force_bool_result(ev: Evaluator, v: Value, span: SourceSpan, what: str) -> bool:
    """The result of a predicate, which must be a Boolean."""
    if not isinstance(v, bool):
        raise ev.error(
            f"value is {type_name(v)} while a Boolean was expected (the result of {what})", span
        )
    return v
