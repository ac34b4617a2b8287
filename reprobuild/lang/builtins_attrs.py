"""Builtins on attribute sets; attribute values stay lazy, as in Nix."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from reprobuild.errors import SourceSpan
from reprobuild.lang.primops import WORK_PER_STEP, applier2, builtin, force_function
from reprobuild.lang.values import AttrsValue, Lazy, ListValue, Thunk, Value

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

G = "attrs"


@builtin("attrNames", "set", group=G)
def _attr_names(ev: Evaluator, span: SourceSpan, s: Thunk) -> Value:
    """The names of the attributes of *set*, sorted."""
    attrs = ev.force_attrs(s, span).attrs
    ev.tick(span, len(attrs) // WORK_PER_STEP)
    return ListValue([Thunk.of(n) for n in sorted(attrs)])


@builtin("attrValues", "set", group=G)
def _attr_values(ev: Evaluator, span: SourceSpan, s: Thunk) -> Value:
    """The values of the attributes of *set*, in the order of their sorted names."""
    attrs = ev.force_attrs(s, span).attrs
    ev.tick(span, len(attrs) // WORK_PER_STEP)
    return ListValue([attrs[n] for n in sorted(attrs)])


@builtin("hasAttr", "s", "set", group=G)
def _has_attr(ev: Evaluator, span: SourceSpan, n: Thunk, s: Thunk) -> Value:
    """Whether *set* has an attribute named *s* (`set ? ${s}`); the value is not evaluated."""
    return ev.force_str(n, span) in ev.force_attrs(s, span).attrs


@builtin("getAttr", "s", "set", group=G)
def _get_attr(ev: Evaluator, span: SourceSpan, n: Thunk, s: Thunk) -> Value:
    """The attribute named *s* of *set* (`set.${s}`); an error if it is missing."""
    name = ev.force_str(n, span)
    attrs = ev.force_attrs(s, span).attrs
    if name not in attrs:
        close = difflib.get_close_matches(name, sorted(attrs), n=1)
        raise ev.error(
            f"attribute '{name}' missing",
            span,
            hint=f"did you mean '{close[0]}'?" if close else None,
        )
    return ev.force(attrs[name])


@builtin("listToAttrs", "list", group=G)
def _list_to_attrs(ev: Evaluator, span: SourceSpan, xs: Thunk) -> Value:
    """A set from a list of `{ name = ...; value = ...; }`; the first of a repeated name wins."""
    out: dict[str, Thunk] = {}
    for item in ev.force_list(xs, span).items:
        ev.tick(span)
        pair = ev.force_attrs(item, span)
        if "name" not in pair.attrs:
            raise ev.error("attribute 'name' missing in an element of listToAttrs", span)
        name = ev.force_str(pair.attrs["name"], span)
        if "value" not in pair.attrs:
            raise ev.error("attribute 'value' missing in an element of listToAttrs", span)
        out.setdefault(name, pair.attrs["value"])
    return AttrsValue(out)


@builtin("mapAttrs", "f", "attrset", group=G)
def _map_attrs(ev: Evaluator, span: SourceSpan, f: Thunk, s: Thunk) -> Value:
    """The set with each value replaced by `f name value`, lazily."""
    fn = ev.force(f)
    attrs = ev.force_attrs(s, span).attrs
    ev.tick(span, len(attrs) // WORK_PER_STEP)
    out: dict[str, Thunk] = {}
    for name in sorted(attrs):
        out[name] = Lazy(applier2(ev, fn, Thunk.of(name), attrs[name], span))
    return AttrsValue(out)


@builtin("removeAttrs", "set", "list", bare=True, group=G)
def _remove_attrs(ev: Evaluator, span: SourceSpan, s: Thunk, names: Thunk) -> Value:
    """*set* without the attributes named in *list* (names it lacks are ignored)."""
    v = ev.force_attrs(s, span)
    drop = {ev.force_str(t, span) for t in ev.force_list(names, span).items}
    ev.tick(span, (len(v.attrs) + len(drop)) // WORK_PER_STEP)
    return AttrsValue(
        {k: t for k, t in v.attrs.items() if k not in drop},
        {k: sp for k, sp in v.spans.items() if k not in drop},
    )


@builtin("intersectAttrs", "e1", "e2", group=G)
def _intersect_attrs(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """The attributes of *e2* whose names are also in *e1*."""
    left = ev.force_attrs(a, span).attrs
    right = ev.force_attrs(b, span)
    ev.tick(span, min(len(left), len(right.attrs)) // WORK_PER_STEP)
    return AttrsValue(
        {k: t for k, t in right.attrs.items() if k in left},
        {k: sp for k, sp in right.spans.items() if k in left},
    )


@builtin("catAttrs", "attr", "list", group=G)
def _cat_attrs(ev: Evaluator, span: SourceSpan, n: Thunk, xs: Thunk) -> Value:
    """The values of the attribute *attr* of the sets in *list* that have it, in order."""
    name = ev.force_str(n, span)
    out = []
    for t in ev.force_list(xs, span).items:
        v = ev.force_attrs(t, span).attrs.get(name)
        if v is not None:
            out.append(v)
    return ListValue(out)


@builtin("zipAttrsWith", "f", "list", group=G)
def _zip_attrs_with(ev: Evaluator, span: SourceSpan, f: Thunk, xs: Thunk) -> Value:
    """A set with each name found in the sets of *list*, its value
    `f name [ the values under that name, in order ]`, lazily."""
    fn = force_function(ev, f, span)
    seen: dict[str, list[Thunk]] = {}
    for t in ev.force_list(xs, span).items:
        for k, v in ev.force_attrs(t, span).attrs.items():
            seen.setdefault(k, []).append(v)
        ev.tick(span)
    return AttrsValue(
        {
            k: Lazy(applier2(ev, fn, Thunk.of(k), Thunk.of(ListValue(vs)), span))
            for k, vs in sorted(seen.items())
        }
    )
