"""The base scope: builtins after Nix's, and the step constructors.

The builtins live in a table (:mod:`reprobuild.lang.primops`) filled by the
``builtins_*`` modules; this one adds ``import`` and the JSON builtins, makes
the scope, and checks step arguments.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reprobuild.canonical import canonical_json
from reprobuild.errors import EvalError, ImportEscapes, SourceSpan
from reprobuild.lang import (  # noqa: F401 - each fills the table of builtins
    builtins_attrs,
    builtins_files,
    builtins_lists,
    builtins_regex,
    builtins_strings,
    builtins_types,
)
from reprobuild.lang.primops import TABLE, builtin
from reprobuild.lang.rootfs_args import file_entry, package_list
from reprobuild.lang.values import (
    AttrsValue,
    Closure,
    Env,
    Lazy,
    ListValue,
    PathValue,
    PrimOp,
    StepValue,
    Thunk,
    Value,
    type_name,
)
from reprobuild.stepspec import STEP_KINDS, Arg

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

@builtin("import", "path", bare=True, group="files")
def _import(ev: Evaluator, span: SourceSpan, p: Thunk) -> Value:
    """The value of the recipe file *path* (a directory means its `default.repro`),
    evaluated once however often it is imported; it must be inside the recipe's tree."""
    return import_file(ev, ev.force(p), span)


@builtin("toJSON", "e", group="strings")
def _to_json_builtin(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """*e*, evaluated completely, as a JSON string (set keys sorted, no spaces)."""
    return canonical_json(to_json(ev, ev.force(x), span))  # to_json bounded the size


@builtin("fromJSON", "e", group="strings")
def _from_json_builtin(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """The value the JSON string *e* denotes (objects become sets)."""
    text = ev.force_str(x, span)
    _check_json_nesting(ev, text, span)
    try:
        value = from_json(json.loads(text, parse_int=_json_int, parse_constant=_json_constant))
    except json.JSONDecodeError as exc:
        raise ev.error(
            f"invalid JSON in fromJSON: {exc.msg} at character {exc.pos}", span
        ) from None
    except ValueError as exc:  # from _json_int, _json_constant, _utf8
        raise ev.error(f"invalid JSON in fromJSON: {exc}", span) from None
    return value


@builtin("trace", "e1", "e2", group="types")
def _trace(ev: Evaluator, span: SourceSpan, msg: Thunk, x: Thunk) -> Value:
    """Print *e1* (a string as is, anything else as JSON) on standard error, then
    return *e2*."""
    v = ev.force(msg)
    shown = v if isinstance(v, str) else json.dumps(to_json(ev, ev.force_deep(v), span))
    ev.trace_hook(shown)
    return ev.force(x)


def make_base_env(ev: Evaluator) -> Env:
    """The scope every recipe file starts in: ``builtins``, the bare builtins, the
    step constructors, ``true``, ``false`` and ``null``."""
    prims: dict[str, PrimOp] = {
        b.name: PrimOp(b.name, b.arity, functools.partial(b.impl, ev)) for b in TABLE.values()
    }
    for kind in STEP_KINDS:
        prims[kind] = PrimOp(kind, 1, _step_constructor(ev, kind))

    builtins_set: dict[str, Thunk] = {name: Thunk.of(p) for name, p in sorted(prims.items())}
    builtins_set["true"] = Thunk.of(True)
    builtins_set["false"] = Thunk.of(False)
    builtins_set["null"] = Thunk.of(None)
    builtins_value = AttrsValue(builtins_set)
    builtins_set["builtins"] = Thunk.of(builtins_value)

    base: dict[str, Thunk] = {
        "builtins": Thunk.of(builtins_value),
        "true": Thunk.of(True),
        "false": Thunk.of(False),
        "null": Thunk.of(None),
    }
    # Without the ``builtins.`` prefix: the table's ``bare`` builtins (as in
    # Nix's global scope) and the step constructors.
    bare = sorted(b.name for b in TABLE.values() if b.bare)
    for name in (*bare, *STEP_KINDS):
        base[name] = builtins_set[name]
    return Env(base, None)


def import_file(ev: Evaluator, target: Value, span: SourceSpan) -> Value:
    """``import ./file.repro``: evaluated once per file, never outside the tree."""
    if not isinstance(target, PathValue):
        raise ev.error(
            f"value is {type_name(target)} while a path was expected (import takes a path "
            "such as ./lib.repro)",
            span,
        )
    root = Path(target.root)
    path = root / target.rel
    if path.is_dir():
        path = path / "default.repro"
    real = path.resolve()
    if not real.is_relative_to(ev.root_dir):
        raise ev.error(
            f"import of '{target.display()}' leaves the directory tree of the top-level recipe "
            "(through a symbolic link)",
            span,
            ImportEscapes,
        )
    key = str(real)
    cached = ev.imports.get(key)
    if cached is not None:
        return ev.force(cached)
    if not real.is_file():
        raise ev.error(f"cannot import '{target.display()}': no such file", span)
    top_display = next(iter(ev.file_dirs), "")
    top_dir = Path(top_display).parent
    rel = real.relative_to(ev.root_dir)
    display = str(top_dir / rel) if top_display else str(rel)

    def load() -> Value:
        with ev.frame(f"importing '{display}'"):
            return ev.eval_file(real, display)

    thunk = Lazy(load)
    ev.imports[key] = thunk
    return ev.force(thunk)


def _step_constructor(ev: Evaluator, kind: str) -> Callable[..., Value]:
    spec = STEP_KINDS[kind]

    def construct(span: SourceSpan, arg: Thunk) -> Value:
        given = ev.force(arg)
        if not isinstance(given, AttrsValue):
            required = "; ".join(a.name + " = ..." for a in spec.args if a.required)
            raise ev.error(
                f"{kind} takes a set of arguments, not {type_name(given)}",
                span,
                hint=f"write {kind} {{ {required}; }}",
            )
        known = spec.arg_names
        for name in sorted(given.attrs):
            if name not in known:
                import difflib

                close = difflib.get_close_matches(name, known, n=1)
                raise ev.error(
                    f"unknown attribute '{name}' for {kind}; expected one of: "
                    + ", ".join(sorted(known)),
                    given.spans.get(name, span),
                    hint=f"did you mean '{close[0]}'?" if close else None,
                )
        for a in spec.args:
            if a.required and a.name not in given.attrs:
                raise ev.error(f"{kind} requires the attribute '{a.name}'", span)
        if kind == "file" and ("path" in given.attrs) == ("text" in given.attrs):
            raise ev.error("file takes exactly one of 'path' or 'text'", span)
        if kind == "oci_image" and "root" not in given.attrs and "layers" not in given.attrs:
            raise ev.error("oci_image requires 'root' or 'layers'", span)
        return StepValue(kind, given, span)

    return construct


# -- step arguments: forced, checked, defaults filled --------------------------

SIZE_RE = re.compile(r"^[0-9]+[KMGT]?$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def step_args(ev: Evaluator, step: StepValue) -> dict[str, Any]:
    """The arguments of a step, checked against its kind's table.

    Values are plain Python data (str, int, bool, None, list, dict) except
    nested steps (:class:`StepValue`) and files (:class:`PathValue`).
    """
    return ev.deep(lambda: _step_args(ev, step))


def _step_args(ev: Evaluator, step: StepValue) -> dict[str, Any]:
    spec = STEP_KINDS[step.kind]
    out: dict[str, Any] = {}
    for a in spec.args:
        t = step.args.attrs.get(a.name)
        if t is None:
            if not a.only_when_given:
                out[a.name] = a.default
            continue
        span = step.args.spans.get(a.name, step.span)
        with ev.frame(f"checking the argument '{a.name}' of the {step.kind} step at {step.span}"):
            out[a.name] = _check_arg(ev, a, ev.force(t), span, step.kind)
    if step.kind == "rootfs" and out.get("packages_from") is not None:
        span = step.args.spans.get("packages_from", step.span)
        listed = package_list(ev, out["packages_from"], span)
        out["packages"] = list(out["packages"] or []) + [
            p for p in listed if p not in (out["packages"] or [])
        ]
    if step.kind == "fetchurl" and urlsplit(out["url"]).scheme not in ("http", "https"):
        raise ev.error(
            f"fetchurl takes http or https URLs only, not {out['url'].split(':', 1)[0]!r}: "
            "files beside the recipe are read with the file step (file { path = ./x; })",
            step.args.spans.get("url", step.span),
        )
    if step.kind == "fetchurl" and not HEX64.match(out["sha256"]):
        raise ev.error(
            "fetchurl's sha256 must be 64 lowercase hexadecimal digits",
            step.args.spans.get("sha256", step.span),
        )
    return out


def _check_arg(
    ev: Evaluator, a: Arg, v: Value, span: SourceSpan, kind: str
) -> Any:
    def bad(expected: str) -> EvalError:
        return ev.error(
            f"argument '{a.name}' of {kind} must be {expected}, not {type_name(v)}", span
        )

    def string_list(x: Value) -> list[str]:
        if not isinstance(x, ListValue):
            raise bad("a list of strings")
        out = []
        for t in x.items:
            s = ev.force(t)
            if not isinstance(s, str):
                raise ev.error(
                    f"argument '{a.name}' of {kind} must be a list of strings, "
                    f"but it contains {type_name(s)}",
                    span,
                )
            out.append(s)
        return out

    def step_of(x: Value) -> StepValue:
        if not isinstance(x, StepValue) or (a.steps and x.kind not in a.steps):
            raise ev.error(
                f"argument '{a.name}' of {kind} must be a "
                + " or ".join(a.steps)
                + f" step, not {type_name(x)}",
                span,
            )
        return x

    if v is None and not a.required:
        result: Any = None
    elif a.type == "string":
        if not isinstance(v, str):
            raise bad("a string")
        result = v
    elif a.type == "int":
        if not isinstance(v, int) or isinstance(v, bool):
            raise bad("an integer")
        result = v
    elif a.type == "bool":
        if not isinstance(v, bool):
            raise bad("a Boolean")
        result = v
    elif a.type == "strings":
        result = string_list(v)
    elif a.type == "string_or_strings":
        result = v if isinstance(v, str) else string_list(v)
    elif a.type == "size":
        positive_int = isinstance(v, int) and not isinstance(v, bool) and v > 0
        if positive_int or (isinstance(v, str) and SIZE_RE.match(v)):
            result = v
        else:
            raise ev.error(
                f'argument \'{a.name}\' of {kind} must be a size such as "512M" or "2G"', span
            )
    elif a.type == "path":
        if not isinstance(v, PathValue):
            raise bad("a path such as ./file")
        result = v
    elif a.type == "path_or_string":
        if not isinstance(v, PathValue | str):
            raise bad("a path or a string")
        result = v
    elif a.type == "step":
        result = step_of(v)
    elif a.type == "steps":
        if not isinstance(v, ListValue):
            raise bad("a list of steps")
        result = [step_of(ev.force(t)) for t in v.items]
    elif a.type == "step_or_steps":
        result = [step_of(ev.force(t)) for t in v.items] if isinstance(v, ListValue) else step_of(v)
    elif a.type in ("string_attrs", "files", "inputs"):
        if not isinstance(v, AttrsValue):
            raise bad("a set")
        result = {}
        for name in sorted(v.attrs):
            x = ev.force(v.attrs[name])
            sp = v.spans.get(name, span)
            if a.type == "string_attrs" and not isinstance(x, str):
                raise ev.error(
                    f"'{a.name}.{name}' of {kind} must be a string, not {type_name(x)}", sp
                )
            if a.type == "files":
                if not name.startswith("/"):
                    raise ev.error(
                        f"'{a.name}' of {kind}: '{name}' must be an absolute path in the image", sp
                    )
                x = file_entry(ev, x, f"'{a.name}.\"{name}\"' of {kind}", sp)
            if a.type == "inputs" and not isinstance(x, PathValue | StepValue):
                raise ev.error(
                    f"'{a.name}.{name}' of {kind} must be a path or a step, not {type_name(x)}", sp
                )
            result[name] = x
    elif a.type == "attrs_list":
        if not isinstance(v, ListValue):
            raise bad("a list of sets")
        result = [to_json(ev, ev.force_deep(ev.force(t)), span) for t in v.items]
    else:  # pragma: no cover - the table only uses the types above
        raise bad(a.type)
    if a.choices and result not in a.choices:
        raise ev.error(
            f"argument '{a.name}' of {kind} must be one of "
            + ", ".join("null" if c is None else f'"{c}"' for c in a.choices)
            + f", not {json.dumps(result)}",
            span,
        )
    return result


# -- JSON ------------------------------------------------------------------------


def to_json(ev: Evaluator, v: Value, span: SourceSpan | None) -> Any:
    """A fully forced value as JSON data; steps become ``{"kind": ..., args}``.

    The data may be far larger than the value (a value can share one list
    many times over), so its size is bounded by ``max_string`` characters.
    """
    budget = [ev.limits.max_string]
    return ev.deep(lambda: _to_json(ev, v, span, budget, 1))


def _to_json(
    ev: Evaluator, v: Value, span: SourceSpan | None, budget: list[int], level: int
) -> Any:
    ev.tick(span)
    if level > ev.limits.max_nesting:
        # Everything downstream (printing, JSON encoding, planning) recurses
        # over this data on an ordinary stack.
        raise ev.limit_error(
            f"a value nested more than {ev.limits.max_nesting} levels deep cannot be output",
            "max_nesting",
            span,
        )
    budget[0] -= 8 + (len(v) if isinstance(v, str) else 0)
    if budget[0] < 0:
        raise ev.limit_error(
            f"the value as JSON would be longer than {ev.limits.max_string} characters",
            "max_string",
            span,
        )
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise ev.error(f"cannot convert the float {v} to JSON", span)
        return v
    if isinstance(v, PathValue):
        return v.display()
    ev.enter(span)
    try:
        if isinstance(v, ListValue):
            return [_to_json(ev, ev.force(t), span, budget, level + 1) for t in v.items]
        if isinstance(v, AttrsValue):
            # As Nix: a set with __toString is that string, one with outPath that value.
            if "__toString" in v.attrs:
                return ev.coerce_to_string(v, span, more=False)
            if "outPath" in v.attrs:
                return _to_json(ev, ev.force(v.attrs["outPath"]), span, budget, level + 1)
            budget[0] -= sum(len(k) for k in v.attrs)
            return {
                k: _to_json(ev, ev.force(v.attrs[k]), span, budget, level + 1)
                for k in sorted(v.attrs)
            }
        if isinstance(v, StepValue):
            args = step_args(ev, v)
            out: dict[str, Any] = {"kind": v.kind}
            for k, x in args.items():
                out[k] = _arg_json(ev, x, span, budget, level + 1)
            return out
    finally:
        ev.depth -= 1
    if isinstance(v, Closure | PrimOp):
        raise ev.error("cannot convert a function to JSON", span)
    raise ev.error(f"cannot convert {type_name(v)} to JSON", span)  # pragma: no cover


def _arg_json(
    ev: Evaluator, x: Any, span: SourceSpan | None, budget: list[int], level: int
) -> Any:
    if isinstance(x, StepValue | PathValue):
        return _to_json(ev, x, span, budget, level)
    if isinstance(x, list):
        return [_arg_json(ev, y, span, budget, level + 1) for y in x]
    if isinstance(x, dict):
        return {k: _arg_json(ev, x[k], span, budget, level + 1) for k in sorted(x)}
    return x


def from_json(data: Any) -> Value:
    """JSON data as a value; raises ValueError for a string UTF-8 cannot hold."""
    if isinstance(data, list):
        return ListValue([Thunk.of(from_json(x)) for x in data])
    if isinstance(data, dict):
        return AttrsValue({_utf8(k): Thunk.of(from_json(x)) for k, x in data.items()})
    if isinstance(data, str):
        return _utf8(data)
    return data  # type: ignore[no-any-return]


_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(s: str) -> str:
    # "\ud800" is valid JSON but no text: it could never be printed or written.
    if _SURROGATE.search(s):
        raise ValueError("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    return s


def _json_int(text: str) -> int:
    digits = text.lstrip("-").lstrip("0")
    n = int(text) if len(digits) <= 19 else 2**63
    if not -(2**63) <= n < 2**63:
        raise ValueError(f"integer {text[:40]} does not fit in 64 bits")
    return n


def _json_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


def _check_json_nesting(ev: Evaluator, text: str, span: SourceSpan) -> None:
    """json.loads recurses in C; refuse deep nesting before it can overflow."""
    limit = ev.limits.max_nesting
    bare = _JSON_STRING.sub("", text)
    ev.tick(span, len(text) // 1024)
    depth = 0
    for m in _JSON_BRACKETS.finditer(bare):
        depth += 1 if m.group() in "[{" else -1
        if depth > limit:
            raise ev.limit_error(
                f"JSON nested more than {limit} levels deep", "max_nesting", span
            )
