"""Builtins on types, evaluation order, errors and numbers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from reprobuild.errors import SourceSpan
from reprobuild.lang.primops import Abort, AssertionFailed, Throw, builtin
from reprobuild.lang.values import (
    AttrsValue,
    Closure,
    ListValue,
    PathValue,
    PrimOp,
    StepValue,
    Thunk,
    Value,
    type_name,
)

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

G = "types"
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1


def type_of(v: Value) -> str:
    """Nix's ``typeOf`` names; a step (reprobuild's own kind of value) is ``"step"``."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, PathValue):
        return "path"
    if isinstance(v, ListValue):
        return "list"
    if isinstance(v, AttrsValue):
        return "set"
    if isinstance(v, Closure | PrimOp):
        return "lambda"
    assert isinstance(v, StepValue)
    return "step"


@builtin("typeOf", "e", group=G)
def _type_of(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """The type of *e* as a string: `"int"`, `"bool"`, `"string"`, `"path"`, `"null"`,
    `"set"`, `"list"`, `"lambda"`, `"float"`, or (reprobuild only) `"step"`."""
    return type_of(ev.force(x))


def _is(kind: str, doc: str) -> None:
    def impl(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
        return type_of(ev.force(x)) == kind

    impl.__doc__ = doc
    builtin("is" + kind.capitalize() if kind != "lambda" else "isFunction", "e", group=G)(impl)


_is("list", "Whether *e* evaluates to a list.")
_is("string", "Whether *e* evaluates to a string.")
_is("int", "Whether *e* evaluates to an integer.")
_is("float", "Whether *e* evaluates to a float.")
_is("bool", "Whether *e* evaluates to a Boolean.")
_is("path", "Whether *e* evaluates to a path.")
_is("lambda", "Whether *e* evaluates to a function (a set with `__functor` is not one).")


@builtin("isAttrs", "e", group=G)
def _is_attrs(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """Whether *e* evaluates to a set."""
    return isinstance(ev.force(x), AttrsValue)


@builtin("isNull", "e", bare=True, group=G)
def _is_null(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """Whether *e* evaluates to `null` (the same as `e == null`)."""
    return ev.force(x) is None


@builtin("seq", "e1", "e2", group=G)
def _seq(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """Evaluate *e1* (not its elements or attributes), then return *e2*."""
    ev.force(a)
    return ev.force(b)


@builtin("deepSeq", "e1", "e2", group=G)
def _deep_seq(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """Evaluate *e1* completely (every element and attribute, recursively), then return *e2*."""
    ev.force_deep(ev.force(a))
    return ev.force(b)


@builtin("tryEval", "e", group=G)
def _try_eval(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """`{ success = true; value = e; }`, or `{ success = false; value = false; }` if
    evaluating *e* (shallowly) hits `throw` or a failed `assert`. Other errors,
    `abort` among them, are not caught."""
    try:
        ev.force(x)
    except (Throw, AssertionFailed):
        return AttrsValue({"success": Thunk.of(False), "value": Thunk.of(False)})
    return AttrsValue({"success": Thunk.of(True), "value": x})


@builtin("throw", "s", bare=True, group=G)
def _throw(ev: Evaluator, span: SourceSpan, msg: Thunk) -> Value:
    """Fail with the message *s* (`tryEval` can catch it)."""
    text = ev.coerce_to_string(ev.force(msg), span, more=False)
    raise ev.error(text, span, Throw)


@builtin("abort", "s", bare=True, group=G)
def _abort(ev: Evaluator, span: SourceSpan, msg: Thunk) -> Value:
    """Stop evaluation with the message *s* (nothing catches it)."""
    text = ev.coerce_to_string(ev.force(msg), span, more=False)
    raise ev.error(f"evaluation aborted with the following error message: '{text}'", span, Abort)


@builtin("lessThan", "e1", "e2", group=G)
def _less_than(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """`e1 < e2` (numbers, strings, paths, or lists compared element by element)."""
    return ev.compare(ev.force(a), ev.force(b), span) < 0


# -- arithmetic --------------------------------------------------------------


def _number(ev: Evaluator, t: Thunk, span: SourceSpan) -> int | float:
    v = ev.force(t)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ev.error(f"value is {type_name(v)} while an integer or a float was expected", span)
    return v


def _int_result(ev: Evaluator, n: int, span: SourceSpan) -> int:
    if not INT_MIN <= n <= INT_MAX:
        raise ev.error("integer overflow", span)
    return n


@builtin("add", "e1", "e2", group=G)
def _add(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """`e1 + e2` for numbers (a float if either is one)."""
    x, y = _number(ev, a, span), _number(ev, b, span)
    r = x + y
    return _int_result(ev, r, span) if isinstance(r, int) else r


@builtin("sub", "e1", "e2", group=G)
def _sub(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """`e1 - e2` for numbers."""
    x, y = _number(ev, a, span), _number(ev, b, span)
    r = x - y
    return _int_result(ev, r, span) if isinstance(r, int) else r


@builtin("mul", "e1", "e2", group=G)
def _mul(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """`e1 * e2` for numbers."""
    x, y = _number(ev, a, span), _number(ev, b, span)
    r = x * y
    return _int_result(ev, r, span) if isinstance(r, int) else r


@builtin("div", "e1", "e2", group=G)
def _div(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """`e1 / e2` for numbers; integer division truncates toward zero."""
    y = _number(ev, b, span)  # first, as Nix: `div "x" 0` is a division by zero
    if y == 0:
        raise ev.error("division by zero", span)
    x = _number(ev, a, span)
    if isinstance(x, int) and isinstance(y, int):
        q = abs(x) // abs(y)
        return _int_result(ev, q if (x >= 0) == (y >= 0) else -q, span)
    return x / y


def _bits(name: str, op: str) -> None:
    def impl(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
        x, y = ev.force_int(a, span), ev.force_int(b, span)
        return x & y if op == "&" else x | y if op == "|" else x ^ y

    impl.__doc__ = f"The bitwise {name[3:].upper()} of the integers *e1* and *e2*."
    builtin(name, "e1", "e2", group=G)(impl)


_bits("bitAnd", "&")
_bits("bitOr", "|")
_bits("bitXor", "^")


def _rounding(name: str) -> None:
    def impl(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
        v = _number(ev, x, span)
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            raise ev.error(f"cannot round {v} to an integer", span)
        return _int_result(ev, math.ceil(v) if name == "ceil" else math.floor(v), span)

    impl.__doc__ = f"*double* rounded {'up' if name == 'ceil' else 'down'} to an integer."
    builtin(name, "double", group=G)(impl)


_rounding("ceil")
_rounding("floor")


@builtin("functionArgs", "f", group=G)
def _function_args(ev: Evaluator, span: SourceSpan, f: Thunk) -> Value:
    """The named arguments of the function *f*, each `true` if it has a default:
    `functionArgs ({ a, b ? 1 }: a)` is `{ a = false; b = true; }`; `{ }` for
    `x: ...` and for builtins."""
    fn = ev.force(f)
    if isinstance(fn, PrimOp):
        return AttrsValue({})
    if not isinstance(fn, Closure):
        raise ev.error("'functionArgs' requires a function", span)
    formals = fn.node.formals
    if formals is None:
        return AttrsValue({})
    return AttrsValue({x.name: Thunk.of(x.default is not None) for x in formals.formals})
