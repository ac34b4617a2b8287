"""Builtins on lists, forcing what Nix 2.8's primops force and no more."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from reprobuild.errors import SourceSpan
from reprobuild.lang.primops import (
    WORK_PER_STEP,
    applier,
    builtin,
    force_bool_result,
    force_function,
)
from reprobuild.lang.values import AttrsValue, Lazy, ListValue, PathValue, Thunk, Value, type_name

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

G = "lists"


@builtin("map", "f", "list", bare=True, group=G)
def _map(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """Apply *f* to each element of *list*, lazily: `map (x: x * 2) [ 1 2 ]` is `[ 2 4 ]`."""
    fn = ev.force(f)
    items = ev.force_list(xs, span).items
    ev.tick(span, len(items) // WORK_PER_STEP)
    return ListValue([Lazy(applier(ev, fn, x, span)) for x in items])


@builtin("filter", "f", "list", group=G)
def _filter(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """The elements of *list* for which *f* returns `true`."""
    fn = force_function(ev, f, span)
    out = []
    for x in ev.force_list(xs, span).items:
        keep = ev.apply(fn, x, span)
        if not isinstance(keep, bool):
            raise ev.error(f"value is {type_name(keep)} while a Boolean was expected", span)
        if keep:
            out.append(x)
    return ListValue(out)


@builtin("length", "list", group=G)
def _length(ev: Evaluator, span: SourceSpan, xs: Thunk) -> Value:
    """The number of elements of *list*."""
    return len(ev.force_list(xs, span).items)


@builtin("elem", "x", "list", group=G)
def _elem(ev: Evaluator, span: SourceSpan, x: Thunk, xs: Thunk) -> Value:
    """Whether *x* is equal (`==`) to an element of *list*."""
    v = ev.force(x)
    return any(ev.equal(v, ev.force(y), span) for y in ev.force_list(xs, span).items)


@builtin("head", "list", group=G)
def _head(ev: Evaluator, span: SourceSpan, xs: Thunk) -> Value:
    """The first element of *list*; an error if it is empty."""
    items = ev.force_list(xs, span).items
    if not items:
        raise ev.error("'builtins.head' called on an empty list", span)
    return ev.force(items[0])


@builtin("tail", "list", group=G)
def _tail(ev: Evaluator, span: SourceSpan, xs: Thunk) -> Value:
    """*list* without its first element; an error if it is empty."""
    items = ev.force_list(xs, span).items
    if not items:
        raise ev.error("'builtins.tail' called on an empty list", span)
    ev.tick(span, len(items) // WORK_PER_STEP)
    return ListValue(items[1:])


@builtin("foldl'", "op", "nul", "list", group=G)
def _foldl(ev: Evaluator, span: SourceSpan, f: Thunk, z: Thunk, xs: Thunk) -> Value:
    """Reduce *list* from the left: `foldl' op nul [ x0 x1 ]` is `op (op nul x0) x1`.

    Each intermediate result is evaluated (hence the `'`), but *nul* is only
    forced when *list* is empty, as in Nix 2.8: `foldl' (_: x: x) (throw "no") [ 1 ]`
    is `1`.
    """
    fn = force_function(ev, f, span)
    items = ev.force_list(xs, span).items
    if not items:
        return ev.force(z)
    acc = z
    result: Value = None
    for x in items:
        result = ev.apply(ev.apply(fn, acc, span), x, span)
        acc = Thunk.of(result)
    return result


@builtin("elemAt", "xs", "n", group=G)
def _elem_at(ev: Evaluator, span: SourceSpan, xs: Thunk, n: Thunk) -> Value:
    """The element of *xs* at position *n*, counting from 0."""
    items = ev.force_list(xs, span).items
    i = ev.force_int(n, span)
    if not 0 <= i < len(items):
        raise ev.error(f"list index {i} is out of bounds", span)
    return ev.force(items[i])


@builtin("concatLists", "lists", group=G)
def _concat_lists(ev: Evaluator, span: SourceSpan, xss: Thunk) -> Value:
    """The lists in *lists* joined into one: `concatLists [ [ 1 ] [ 2 3 ] ]` is `[ 1 2 3 ]`."""
    out: list[Thunk] = []
    for t in ev.force_list(xss, span).items:
        out.extend(ev.force_list(t, span).items)
        ev.check_list(len(out), span)
    ev.tick(span, len(out) // WORK_PER_STEP)
    return ListValue(out)


@builtin("concatMap", "f", "list", group=G)
def _concat_map(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """`concatLists (map f list)`, with each result of *f* evaluated at once."""
    fn = force_function(ev, f, span)
    out: list[Thunk] = []
    for x in ev.force_list(xs, span).items:
        part = ev.apply(fn, x, span)
        if not isinstance(part, ListValue):
            raise ev.error(
                f"value is {type_name(part)} while a list was expected "
                "(the result of the function given to concatMap)",
                span,
            )
        out.extend(part.items)
        ev.check_list(len(out), span)
    ev.tick(span, len(out) // WORK_PER_STEP)
    return ListValue(out)


@builtin("genList", "generator", "length", group=G)
def _gen_list(ev: Evaluator, span: SourceSpan, f: Thunk, n: Thunk) -> Value:
    """The list `[ (generator 0) ... (generator (length - 1)) ]`; elements stay lazy."""
    size = ev.force_int(n, span)
    if size < 0:
        raise ev.error(f"cannot create list of size {size}", span)
    ev.check_list(size, span)
    ev.tick(span, size // WORK_PER_STEP)
    return ListValue([Lazy(_generated(ev, f, i, span)) for i in range(size)])


def _generated(ev: Evaluator, f: Thunk, i: int, span: SourceSpan) -> Callable[[], Value]:
    return lambda: ev.apply(ev.force(f), Thunk.of(i), span)


class _Key:
    """Python's sort compares keys with ``<`` only: the comparator is that ``<``."""

    __slots__ = ("ev", "fn", "span", "thunk")

    def __init__(self, ev: Evaluator, fn: Value, span: SourceSpan, thunk: Thunk) -> None:
        self.ev = ev
        self.fn = fn
        self.span = span
        self.thunk = thunk

    def __lt__(self, other: _Key) -> bool:
        ev = self.ev
        ev.tick(self.span)
        r = ev.apply(ev.apply(self.fn, self.thunk, self.span), other.thunk, self.span)
        return force_bool_result(ev, r, self.span, "the comparator given to sort")


@builtin("sort", "comparator", "list", group=G)
def _sort(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """*list* sorted by *comparator* (`a: b: a < b` sorts ascending); stable, like Nix's."""
    fn = force_function(ev, f, span)
    items = ev.force_list(xs, span).items
    for t in items:
        ev.force(t)
    keys = sorted(_Key(ev, fn, span, t) for t in items)
    return ListValue([k.thunk for k in keys])


def _any_all(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk, want: bool) -> bool:
    fn = force_function(ev, f, span)
    name = "any" if want else "all"
    for x in ev.force_list(xs, span).items:
        r = ev.apply(fn, x, span)
        if force_bool_result(ev, r, span, f"the function given to {name}") == want:
            return want
    return not want


@builtin("any", "pred", "list", group=G)
def _any(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """Whether *pred* is `true` for at least one element (stops at the first)."""
    return _any_all(ev, span, f, xs, True)


@builtin("all", "pred", "list", group=G)
def _all(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """Whether *pred* is `true` for every element (stops at the first `false`)."""
    return _any_all(ev, span, f, xs, False)


@builtin("partition", "pred", "list", group=G)
def _partition(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """`{ right = ...; wrong = ...; }`: the elements for which *pred* is true, and the rest."""
    fn = force_function(ev, f, span)
    right: list[Thunk] = []
    wrong: list[Thunk] = []
    for x in ev.force_list(xs, span).items:
        ev.force(x)
        r = ev.apply(fn, x, span)
        keep = force_bool_result(ev, r, span, "the function given to partition")
        (right if keep else wrong).append(x)
    return AttrsValue({"right": Thunk.of(ListValue(right)), "wrong": Thunk.of(ListValue(wrong))})


@builtin("groupBy", "f", "list", group=G)
def _group_by(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """A set of lists: each element of *list* under the name *f* gives it, in order."""
    fn = force_function(ev, f, span)
    groups: dict[str, list[Thunk]] = {}
    for x in ev.force_list(xs, span).items:
        name = ev.apply(fn, x, span)
        if not isinstance(name, str):
            raise ev.error(
                f"value is {type_name(name)} while a string was expected "
                "(the result of the function given to groupBy)",
                span,
            )
        groups.setdefault(name, []).append(x)
    return AttrsValue({k: Thunk.of(ListValue(v)) for k, v in sorted(groups.items())})


def _key(ev: Evaluator, v: Value, span: SourceSpan) -> tuple[object, ...]:
    """A hashable stand-in for a ``genericClosure`` key, equal where Nix's
    comparison says equal (1 and 1.0 are one key)."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return ("number", v)
    if isinstance(v, str):
        return ("string", v)
    if isinstance(v, PathValue):
        return ("path", str(v.rel))
    if isinstance(v, ListValue):
        return ("list", tuple(_key(ev, ev.force(t), span) for t in v.items))
    ev.compare(v, v, span)  # raises: Nix cannot compare such keys
    raise AssertionError("unreachable")  # pragma: no cover


@builtin("genericClosure", "attrset", group=G)
def _generic_closure(ev: Evaluator, span: SourceSpan, s: Thunk) -> Value:
    """The closure of `startSet` under `operator`: starting from the sets in
    `startSet`, apply `operator` to each new one and add what it returns; a set
    whose `key` was seen before is dropped. In order of discovery."""
    args = ev.force_attrs(s, span).attrs
    for name in ("startSet", "operator"):
        if name not in args:
            raise ev.error(f"attribute '{name}' missing for call to 'genericClosure'", span)
    work = list(ev.force_list(args["startSet"], span).items)
    op = ev.force(args["operator"])
    seen: set[tuple[object, ...]] = set()
    first: tuple[object, Value] = ("", None)  # the kind and value of the first key
    out: list[Thunk] = []
    while work:
        t = work.pop(0)
        ev.tick(span)
        attrs = ev.force_attrs(t, span).attrs
        if "key" not in attrs:
            raise ev.error("attribute 'key' required", span)
        value = ev.force(attrs["key"])
        key = _key(ev, value, span)
        if seen and key[0] != first[0]:
            ev.compare(first[1], value, span)  # Nix compares keys: this raises
        if not seen:
            first = (key[0], value)
        if key in seen:
            continue
        seen.add(key)
        out.append(t)
        ev.check_list(len(out), span)
        more = ev.apply(op, t, span)
        if not isinstance(more, ListValue):
            raise ev.error(
                f"value is {type_name(more)} while a list was expected "
                "(the result of genericClosure's operator)",
                span,
            )
        for x in more.items:
            ev.force(x)
            work.append(x)
    return ListValue(out)
