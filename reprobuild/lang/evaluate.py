"""Lazy evaluation of recipe syntax trees.

Evaluation is pure: it reads recipe files (and ``import``ed ones) and
produces values, some of which are step descriptions. Nothing is fetched or
built here; :mod:`reprobuild.plan` turns the steps into a graph.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from reprobuild.errors import (
    EvalError,
    EvalLimitExceeded,
    ImportEscapes,
    InfiniteRecursion,
    RecipeError,
    SourceSpan,
)
from reprobuild.lang import ast as A
from reprobuild.lang.limits import EvalLimits, recursion_room
from reprobuild.lang.lower import LAttrs, Lowerer, static_name
from reprobuild.lang.parse import FRAMES_PER_NESTING, Parsed, parse_file
from reprobuild.lang.primops import AssertionFailed
from reprobuild.lang.suggest import attribute_hint, variable_hint
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

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_TRACE = 12
# Python frames one level of evaluation depth may take (eval -> apply ->
# builtin -> apply -> call_closure -> eval ...), to size the recursion limit,
# and the C stack it may take (measured: under 1 KiB), to size the stack.
FRAMES_PER_LEVEL = 8
STACK_PER_LEVEL = 4096
MIN_STACK = 32 << 20

T = TypeVar("T")


class Evaluator:
    """Evaluates one top-level recipe and whatever it imports."""

    def __init__(
        self,
        root_dir: Path,
        *,
        trace: Callable[[str], None] | None = None,
        limits: EvalLimits | None = None,
    ) -> None:
        self.root_dir = root_dir.resolve()
        self.limits = limits if limits is not None else EvalLimits.from_env()
        self.depth = 0  # evaluations in progress (bounded by limits.max_depth)
        self.steps = 0  # evaluation steps so far (bounded by limits.max_steps)
        self._max_depth = self.limits.max_depth
        self._max_steps = self.limits.max_steps
        self._deep = False  # the recursion limit is raised for max_depth
        self.source_lines: dict[str, list[str]] = {}
        self.file_dirs: dict[str, PurePosixPath] = {}  # display name -> dir below root
        self.lowerer = Lowerer(self.source_lines)
        self.imports: dict[str, Thunk] = {}
        self.files_read: dict[str, Path] = {}  # display name -> absolute path
        self.paths_probed: set[str] = set()  # pathExists, relative to root_dir
        self.trace_hook = trace or (lambda msg: print(f"trace: {msg}", file=sys.stderr))
        from reprobuild.lang.builtins import make_base_env

        self.base_env = make_base_env(self)
        self.builtins_value = self.base_env.vars["builtins"].value
        assert isinstance(self.builtins_value, AttrsValue)
        self.builtin_names = frozenset(self.builtins_value.attrs)

    # -- entry points -------------------------------------------------------
    def load(self, path: Path, display: str) -> Parsed:
        parsed = parse_file(path, display, max_nesting=self.limits.max_nesting)
        self.files_read[display] = path.resolve()
        self.source_lines[display] = parsed.text.splitlines()
        rel = PurePosixPath(os.path.relpath(path.resolve().parent, self.root_dir))
        self.file_dirs[display] = rel
        with recursion_room(FRAMES_PER_NESTING * self.limits.max_nesting):
            self.lowerer.check_tree(
                parsed.tree, frozenset(self.base_env.vars), self.builtin_names
            )
        return parsed

    def eval_file(self, path: Path, display: str | None = None) -> Value:
        parsed = self.load(path, display or str(path))
        return self.eval(parsed.tree, self.base_env)

    # -- errors --------------------------------------------------------------
    def error(
        self,
        message: str,
        span: SourceSpan | None,
        cls: type[EvalError] = EvalError,
        *,
        hint: str | None = None,
    ) -> EvalError:
        src = None
        if span is not None:
            lines = self.source_lines.get(span.file, [])
            if 0 < span.line <= len(lines):
                src = lines[span.line - 1]
        return cls(message, span, source_line=src, hint=hint)

    @contextmanager
    def frame(self, description: str) -> Iterator[None]:
        """Add ``while evaluating ...`` to errors passing through."""
        try:
            yield
        except RecipeError as exc:
            if len(exc.trace) < MAX_TRACE:
                exc.with_trace(f"… while {description}")
            raise

    # -- forcing -------------------------------------------------------------
    def force(self, t: Thunk) -> Value:
        if t.state == Thunk.DONE:
            return t.value
        if t.state == Thunk.FORCING:
            span = t.expr.span if t.expr is not None else None
            raise self.error("infinite recursion encountered", span, InfiniteRecursion)
        t.state = Thunk.FORCING
        try:
            if isinstance(t, Lazy):
                value = t.fn()
            else:
                assert t.expr is not None and t.env is not None
                value = self.eval(t.expr, t.env)
        except BaseException:
            t.state = Thunk.UNFORCED
            raise
        t.value = value
        t.state = Thunk.DONE
        t.expr = None  # let the environment go
        t.env = None
        return value

    def thunk(self, node: A.Node, env: Env) -> Thunk:
        # Constants need no laziness.
        if isinstance(node, A.Int):
            return Thunk.of(node.value)
        if isinstance(node, A.Str) and all(isinstance(p, str) for p in node.parts):
            return Thunk.of("".join(p for p in node.parts if isinstance(p, str)))
        return Thunk(node, env)

    def force_deep(self, v: Value) -> Value:
        """Force every list element and attribute, recursively (``--strict``)."""
        return self.deep(lambda: self._force_deep(v))

    def _force_deep(self, v: Value) -> Value:
        stack: list[Value] = [v]
        seen: set[int] = set()
        while stack:
            x = stack.pop()
            self.tick(None)
            if isinstance(x, ListValue):
                if id(x) in seen:
                    continue
                seen.add(id(x))
                stack.extend(self.force(t) for t in x.items)
            elif isinstance(x, AttrsValue):
                if id(x) in seen:
                    continue
                seen.add(id(x))
                for name in sorted(x.attrs):
                    with self.frame(f"evaluating the attribute '{name}'"):
                        stack.append(self.force(x.attrs[name]))
        return v

    # -- typed forcing helpers ----------------------------------------------
    def expect(
        self, v: Value, kind: type | tuple[type, ...], what: str, span: SourceSpan | None
    ) -> None:
        ok = isinstance(v, kind) and not (isinstance(v, bool) and bool not in _as_tuple(kind))
        if not ok:
            raise self.error(f"value is {type_name(v)} while {what} was expected", span)

    def force_bool(self, t: Thunk, span: SourceSpan | None) -> bool:
        v = self.force(t)
        if not isinstance(v, bool):
            raise self.error(f"value is {type_name(v)} while a Boolean was expected", span)
        return v

    def force_str(self, t: Thunk, span: SourceSpan | None) -> str:
        v = self.force(t)
        if not isinstance(v, str):
            raise self.error(f"value is {type_name(v)} while a string was expected", span)
        return v

    def force_int(self, t: Thunk, span: SourceSpan | None) -> int:
        v = self.force(t)
        if not isinstance(v, int) or isinstance(v, bool):
            raise self.error(f"value is {type_name(v)} while an integer was expected", span)
        return v

    def force_list(self, t: Thunk, span: SourceSpan | None) -> ListValue:
        v = self.force(t)
        if not isinstance(v, ListValue):
            raise self.error(f"value is {type_name(v)} while a list was expected", span)
        return v

    def force_attrs(self, t: Thunk, span: SourceSpan | None) -> AttrsValue:
        v = self.force(t)
        if not isinstance(v, AttrsValue):
            raise self.error(f"value is {type_name(v)} while a set was expected", span)
        return v

    def check_int(self, n: int, span: SourceSpan | None) -> int:
        if n < INT_MIN or n > INT_MAX:
            raise self.error("integer overflow", span)
        return n

    # -- limits ----------------------------------------------------------------
    def limit_error(self, message: str, limit: str, span: SourceSpan | None) -> EvalError:
        return self.error(message, span, EvalLimitExceeded, hint=self.limits.hint(limit))

    def tick(self, span: SourceSpan | None, n: int = 1) -> None:
        """Count ``n`` steps of work; refuse an endless or exponential evaluation."""
        self.steps += n
        if self.steps > self._max_steps:
            raise self.limit_error(
                f"evaluation took more than {self._max_steps} steps "
                "(an endless or exponential computation?)",
                "max_steps",
                span,
            )

    def enter(self, span: SourceSpan | None) -> None:
        """One level deeper (the caller decrements ``depth`` in a ``finally``)."""
        self.depth += 1
        if self.depth > self._max_depth:
            raise self.limit_error(
                f"evaluation nested more than {self._max_depth} levels deep "
                "(infinite recursion?)",
                "max_depth",
                span,
            )

    def check_str(self, s: str, span: SourceSpan | None) -> str:
        self.check_str_len(len(s), span)
        return s

    def check_str_len(self, n: int, span: SourceSpan | None) -> None:
        if n > self.limits.max_string:
            raise self.limit_error(
                f"a string of {n} characters is longer than the limit", "max_string", span
            )

    def check_list(self, n: int, span: SourceSpan | None) -> None:
        if n > self.limits.max_list:
            raise self.limit_error(
                f"a list of {n} elements is longer than the limit", "max_list", span
            )

    # -- the evaluator proper -----------------------------------------------
    def eval(self, node: A.Node, env: Env) -> Value:
        """Evaluate ``node``; counts depth and steps (see :mod:`.limits`)."""
        if not self._deep:
            return self._eval_outermost(node, env)
        self.depth += 1
        try:
            if self.depth > self._max_depth:
                self.depth -= 1
                self.enter(node.span)
            return self._eval(node, env)
        finally:
            self.depth -= 1

    def _eval_outermost(self, node: A.Node, env: Env) -> Value:
        return self.deep(lambda: self.eval(node, env))

    def deep(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` where ``max_depth`` levels of evaluation fit.

        Python must allow the frames those levels take, so that the limit,
        not a RecursionError, stops a deep recursion; and the C stack must
        hold them (some levels recurse in C: ``all()``, ``json``), or Python
        crashes. So ``fn`` runs in a thread with a stack sized for the limit.
        """
        if self._deep:
            return fn()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append((True, fn()))
            except BaseException as exc:  # handed to the calling thread
                box.append((False, exc))

        old_limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old_limit, self._max_depth * FRAMES_PER_LEVEL + 2_000))
        self._deep = True
        try:
            old_size = threading.stack_size(
                max(MIN_STACK, self._max_depth * STACK_PER_LEVEL + MIN_STACK)
            )
            try:
                worker = threading.Thread(target=run, name="reprobuild-eval", daemon=True)
                worker.start()
            finally:
                threading.stack_size(old_size)
            worker.join()
        finally:
            self._deep = False
            sys.setrecursionlimit(old_limit)
        ok, result = box[0]
        if not ok:
            raise result
        return result  # type: ignore[no-any-return]

    def _eval(self, node: A.Node, env: Env) -> Value:
        while True:
            self.steps += 1
            if self.steps > self._max_steps:
                self.tick(node.span, 0)
            while isinstance(node, A.Paren):
                node = node.expr
            t = type(node)
            if t is A.Int:
                return node.value  # type: ignore[attr-defined, no-any-return]
            if t is A.Var:
                assert isinstance(node, A.Var)
                v = self.force(self.lookup(node.name, env, node.span))
                if type(v) is StepValue and v.hint is None:
                    v.hint = node.name  # a friendlier display name than a path
                return v
            if t is A.Str:
                return self.eval_str(node, env)  # type: ignore[arg-type]
            if t is A.Apply:
                assert isinstance(node, A.Apply)
                fn = self.eval(node.fn, env)
                if type(fn) is Closure and fn.node.formals is None:
                    # A call in tail position runs in this loop, not a level deeper
                    # (a loop written as tail recursion needs no stack).
                    assert fn.node.param is not None
                    env = fn.env.child({fn.node.param: self.thunk(node.arg, env)})
                    node = fn.node.body
                    continue
                return self.apply(fn, self.thunk(node.arg, env), node.span)
            if t is A.Select:
                assert isinstance(node, A.Select)
                return self.eval_select(node, env)
            if t is A.BinOp:
                assert isinstance(node, A.BinOp)
                return self.eval_binop(node, env)
            if t is A.AttrSet:
                assert isinstance(node, A.AttrSet)
                return self.eval_attrs(self.lowerer.lower(node), env)
            if t is A.List:
                assert isinstance(node, A.List)
                return ListValue([self.thunk(x, env) for x in node.items])
            if t is A.Lambda:
                assert isinstance(node, A.Lambda)
                return Closure(node, env)
            if t is A.Let:
                assert isinstance(node, A.Let)
                env = self.rec_scope(self.lowerer.lower(node), env, node.span)[0]
                node = node.body
                continue  # tail position: no deeper
            if t is A.If:
                assert isinstance(node, A.If)
                cond = self.eval(node.cond, env)
                if not isinstance(cond, bool):
                    raise self.error(
                        f"value is {type_name(cond)} while a Boolean was expected", node.cond.span
                    )
                node = node.then if cond else node.else_
                continue
            if t is A.With:
                assert isinstance(node, A.With)
                env = Env({}, env, (Thunk(node.env, env), env.withs))
                node = node.body
                continue
            if t is A.Assert:
                assert isinstance(node, A.Assert)
                cond = self.eval(node.cond, env)
                if not isinstance(cond, bool):
                    raise self.error(
                        f"value is {type_name(cond)} while a Boolean was expected", node.cond.span
                    )
                if not cond:
                    raise self.error("assertion failed", node.span, AssertionFailed)
                node = node.body
                continue
            if t is A.UnOp:
                assert isinstance(node, A.UnOp)
                v = self.eval(node.expr, env)
                if node.op == "!":
                    if not isinstance(v, bool):
                        raise self.error(
                            f"value is {type_name(v)} while a Boolean was expected", node.expr.span
                        )
                    return not v
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise self.error(f"cannot negate {type_name(v)}", node.span)
                return self.check_int(-v, node.span) if isinstance(v, int) else -v
            if t is A.HasAttr:
                assert isinstance(node, A.HasAttr)
                return self.eval_has(node, env)
            if t is A.Float:
                return node.value  # type: ignore[attr-defined, no-any-return]
            if t is A.Path:
                assert isinstance(node, A.Path)
                return self.make_path(node.text, node.span)
            if t is A.IndStr:
                assert isinstance(node, A.IndStr)
                return self.eval_ind_str(node, env)
            raise self.error(f"cannot evaluate {t.__name__}", node.span)  # pragma: no cover

    def lookup(self, name: str, env: Env, span: SourceSpan) -> Thunk:
        e: Env | None = env
        while e is not None:
            t = e.vars.get(name)
            if t is not None:
                return t
            e = e.parent
        w = env.withs
        while w is not None:
            set_thunk, rest = w
            attrs = self.force(set_thunk)
            if not isinstance(attrs, AttrsValue):
                raise self.error(
                    f"value is {type_name(attrs)} while a set was expected (in 'with')", span
                )
            t = attrs.attrs.get(name)
            if t is not None:
                return t
            w = rest  # type: ignore[assignment]
        raise self.error(f"undefined variable '{name}'", span, hint=self._suggest(name, env))

    def _suggest(self, name: str, env: Env) -> str | None:
        names: set[str] = set()
        e: Env | None = env
        while e is not None:
            names.update(e.vars)
            e = e.parent
        w = env.withs
        while w is not None:  # forced by the failed lookup
            if isinstance(w[0].value, AttrsValue):
                names.update(w[0].value.attrs)
            w = w[1]  # type: ignore[assignment]
        return variable_hint(name, names, self.builtin_names)

    def make_path(self, text: str, span: SourceSpan) -> PathValue:
        base = self.file_dirs.get(span.file, PurePosixPath("."))
        joined = posixpath.normpath(posixpath.join(str(base), text))
        if joined == ".." or joined.startswith("../"):
            raise self.error(
                f"path '{text}' leaves the directory tree of the top-level recipe",
                span,
                ImportEscapes,
                hint="keep every file a recipe uses below the recipe's own directory",
            )
        if "\0" in joined:
            raise self.error("a path cannot contain a NUL character", span)
        # A symbolic link inside the tree may point out of it: what would be
        # read is where the link leads, so that is what must stay inside.
        try:
            real = os.path.realpath(os.path.join(self.root_dir, joined))
        except (OSError, ValueError):  # too long, not encodable, ...
            raise self.error(f"path '{text}' is not a usable file name", span) from None
        if not Path(real).is_relative_to(self.root_dir):
            raise self.error(
                f"path '{text}' leaves the directory tree of the top-level recipe "
                "(through a symbolic link)",
                span,
                ImportEscapes,
                hint="keep every file a recipe uses below the recipe's own directory",
            )
        return PathValue(str(self.root_dir), PurePosixPath(joined))

    # -- attribute sets --------------------------------------------------------
    def eval_attrs(self, lowered: LAttrs, env: Env) -> AttrsValue:
        if lowered.rec:
            scope, attrs = self.rec_scope(lowered, env, None)
        else:
            attrs = {la.name: self.thunk(la.value, env) for la in lowered.attrs}
            scope = env
        spans = {la.name: la.span for la in lowered.attrs}
        for d in lowered.dynamic:
            key = self.eval(d.key, scope)
            if key is None:
                continue
            if not isinstance(key, str):
                raise self.error(
                    f"value is {type_name(key)} while a string was expected (as attribute name)",
                    d.span,
                )
            if key in attrs:
                raise self.error(
                    f"dynamic attribute '{key}' already defined at {spans[key]}", d.span
                )
            attrs[key] = self.thunk(d.value, scope)
            spans[key] = d.span
        return AttrsValue(attrs, spans)

    def rec_scope(
        self, lowered: LAttrs, env: Env, span: SourceSpan | None
    ) -> tuple[Env, dict[str, Thunk]]:
        vars: dict[str, Thunk] = {}
        scope = env.child(vars)
        for la in lowered.attrs:
            vars[la.name] = self.thunk(la.value, env if la.inherited else scope)
        return scope, dict(vars)

    def attr_name(self, name: A.AttrName, env: Env, span: SourceSpan) -> str:
        s = static_name(name)
        if s is not None:
            return s
        assert not isinstance(name, str)  # plain names are static
        key_node = name.expr if isinstance(name, A.Interp) else name
        v = self.eval(key_node, env)
        if not isinstance(v, str):
            raise self.error(
                f"value is {type_name(v)} while a string was expected (as attribute name)", span
            )
        return v

    def eval_select(self, node: A.Select, env: Env) -> Value:
        v = self.eval(node.expr, env)
        for i, part in enumerate(node.path):
            name = self.attr_name(part, env, node.span)
            if isinstance(v, AttrsValue):
                t = v.attrs.get(name)
                if t is not None:
                    with self.frame(f"evaluating the attribute '{name}'"):
                        v = self.force(t)
                    continue
                if node.default is not None:
                    return self.eval(node.default, env)
                raise self.error(
                    f"attribute '{name}' missing",
                    node.span,
                    hint=attribute_hint(name, v.attrs, of_builtins=v is self.builtins_value),
                )
            if node.default is not None:
                return self.eval(node.default, env)
            where = "" if i == 0 else f" (selecting '{name}')"
            raise self.error(f"value is {type_name(v)} while a set was expected{where}", node.span)
        return v

    def eval_has(self, node: A.HasAttr, env: Env) -> bool:
        v = self.eval(node.expr, env)
        last = len(node.path) - 1
        for i, part in enumerate(node.path):
            name = self.attr_name(part, env, node.span)
            if not isinstance(v, AttrsValue) or name not in v.attrs:
                return False
            if i < last:  # ``s ? a`` never evaluates ``s.a`` (as in Nix)
                v = self.force(v.attrs[name])
        return True

    # -- strings -------------------------------------------------------------
    def eval_str(self, node: A.Str, env: Env) -> str:
        out: list[str] = []
        size = 0
        for p in node.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                out.append(self.coerce_to_string(self.eval(p.expr, env), p.span, more=False))
            size += len(out[-1])
            self.check_str_len(size, node.span)
        return "".join(out)

    def eval_ind_str(self, node: A.IndStr, env: Env) -> str:
        out: list[str] = []
        for p in strip_indentation(node.parts):
            if isinstance(p, str):
                out.append(p)
            else:
                out.append(self.coerce_to_string(self.eval(p.expr, env), p.span, more=False))
        return self.check_str("".join(out), node.span)

    def coerce_to_string(self, v: Value, span: SourceSpan | None, *, more: bool) -> str:
        """Nix's coerceToString: ``more`` is toString's extra leniency."""
        if isinstance(v, str):
            return v
        if isinstance(v, PathValue):
            return v.display()
        if isinstance(v, AttrsValue):
            if "__toString" in v.attrs:
                fn = self.force(v.attrs["__toString"])
                r = self.apply(fn, Thunk.of(v), span)
                return self.coerce_to_string(r, span, more=more)
            if "outPath" in v.attrs:
                return self.coerce_to_string(self.force(v.attrs["outPath"]), span, more=more)
        if more:
            if v is None:
                return ""
            if isinstance(v, bool):
                return "1" if v else ""
            if isinstance(v, int):
                return str(v)
            if isinstance(v, float):
                return f"{v:.6f}"
            if isinstance(v, ListValue):
                parts = []
                size = 0
                for i, t in enumerate(v.items):
                    item = self.force(t)
                    self.tick(span)
                    self.enter(span)
                    try:
                        s = self.coerce_to_string(item, span, more=True)
                    finally:
                        self.depth -= 1
                    parts.append(s)
                    size += len(s) + 1
                    self.check_str_len(size, span)
                    # Nix puts no space after an empty trailing list.
                    if i < len(v.items) - 1 and not (
                        isinstance(item, ListValue) and not item.items
                    ):
                        parts.append(" ")
                return "".join(parts)
        raise self.error(f"cannot coerce {type_name(v)} to a string", span)

    # -- operators -----------------------------------------------------------
    def eval_binop(self, node: A.BinOp, env: Env) -> Value:
        op = node.op
        if op in ("&&", "||", "->"):
            left = self.eval(node.left, env)
            if not isinstance(left, bool):
                raise self.error(
                    f"value is {type_name(left)} while a Boolean was expected", node.left.span
                )
            if op == "&&" and not left:
                return False
            if op == "||" and left:
                return True
            if op == "->" and not left:
                return True
            right = self.eval(node.right, env)
            if not isinstance(right, bool):
                raise self.error(
                    f"value is {type_name(right)} while a Boolean was expected", node.right.span
                )
            return right
        a = self.eval(node.left, env)
        b = self.eval(node.right, env)
        span = node.span
        if op == "==":
            return self.equal(a, b, span)
        if op == "!=":
            return not self.equal(a, b, span)
        if op == "//":
            if not isinstance(a, AttrsValue):
                raise self.error(
                    f"value is {type_name(a)} while a set was expected", node.left.span
                )
            if not isinstance(b, AttrsValue):
                raise self.error(
                    f"value is {type_name(b)} while a set was expected", node.right.span
                )
            self.tick(span, (len(a.attrs) + len(b.attrs)) // 64)
            return AttrsValue({**a.attrs, **b.attrs}, {**a.spans, **b.spans})
        if op == "++":
            if not isinstance(a, ListValue):
                raise self.error(
                    f"value is {type_name(a)} while a list was expected", node.left.span
                )
            if not isinstance(b, ListValue):
                raise self.error(
                    f"value is {type_name(b)} while a list was expected", node.right.span
                )
            self.check_list(len(a.items) + len(b.items), span)
            self.tick(span, (len(a.items) + len(b.items)) // 64)
            return ListValue(a.items + b.items)
        if op in ("<", ">", "<=", ">="):
            c = self.compare(a, b, span)
            return {"<": c < 0, ">": c > 0, "<=": c <= 0, ">=": c >= 0}[op]
        if op == "+":
            if isinstance(a, PathValue):
                if isinstance(b, str | PathValue):
                    tail = b if isinstance(b, str) else "/" + str(b.rel)
                    return self.make_path("./" + str(a.rel) + tail, span)
                raise self.error(f"cannot append {type_name(b)} to a path", span)
            if isinstance(a, str):
                if isinstance(b, str):
                    self.check_str_len(len(a) + len(b), span)
                    return a + b
                if isinstance(b, PathValue):
                    return self.check_str(a + b.display(), span)
                raise self.error(f"cannot coerce {type_name(b)} to a string", node.right.span)
        if _is_num(a) and _is_num(b):
            assert isinstance(a, int | float) and isinstance(b, int | float)
            if op == "+":
                r = a + b
            elif op == "-":
                r = a - b
            elif op == "*":
                r = a * b
            else:
                if b == 0:
                    raise self.error("division by zero", span)
                if isinstance(a, int) and isinstance(b, int):
                    q = abs(a) // abs(b)
                    r = q if (a >= 0) == (b >= 0) else -q
                else:
                    r = a / b
            return self.check_int(r, span) if isinstance(r, int) else r
        if op == "+":
            raise self.error(f"cannot add {type_name(b)} to {type_name(a)}", span)
        verb = {"-": "subtract", "*": "multiply", "/": "divide"}[op]
        raise self.error(
            f"cannot {verb} {type_name(a)} and {type_name(b)}: both must be numbers", span
        )

    def equal(self, a: Value, b: Value, span: SourceSpan | None = None) -> bool:
        self.tick(span)
        if isinstance(a, ListValue | AttrsValue | StepValue):
            self.enter(span)
            try:
                return self._equal(a, b, span)
            finally:
                self.depth -= 1
        return self._equal(a, b, span)

    def _equal(self, a: Value, b: Value, span: SourceSpan | None) -> bool:
        if _is_num(a) and _is_num(b):
            return a == b
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        if a is None or b is None:
            return a is b
        if isinstance(a, str) and isinstance(b, str):
            return a == b
        if isinstance(a, PathValue) and isinstance(b, PathValue):
            return a == b
        if isinstance(a, ListValue) and isinstance(b, ListValue):
            if a is b:
                return True
            # The same thunk on both sides is equal unforced, even a function
            # (Nix's value identity optimization).
            return len(a.items) == len(b.items) and all(
                x is y or self.equal(self.force(x), self.force(y), span)
                for x, y in zip(a.items, b.items, strict=True)
            )
        if isinstance(a, AttrsValue) and isinstance(b, AttrsValue):
            if a is b:
                return True
            if a.attrs.keys() != b.attrs.keys():
                return False
            return all(
                a.attrs[k] is b.attrs[k]
                or self.equal(self.force(a.attrs[k]), self.force(b.attrs[k]), span)
                for k in sorted(a.attrs)
            )
        if isinstance(a, StepValue) and isinstance(b, StepValue):
            return a is b or (a.kind == b.kind and self.equal(a.args, b.args, span))
        return False

    def compare(self, a: Value, b: Value, span: SourceSpan | None) -> int:
        self.tick(span)
        if isinstance(a, ListValue):
            self.enter(span)
            try:
                return self._compare(a, b, span)
            finally:
                self.depth -= 1
        return self._compare(a, b, span)

    def _compare(self, a: Value, b: Value, span: SourceSpan | None) -> int:
        if _is_num(a) and _is_num(b):
            assert isinstance(a, int | float) and isinstance(b, int | float)
            return (a > b) - (a < b)
        if isinstance(a, str) and isinstance(b, str):
            return (a > b) - (a < b)
        if isinstance(a, PathValue) and isinstance(b, PathValue):
            sa, sb = str(a.rel), str(b.rel)
            return (sa > sb) - (sa < sb)
        if isinstance(a, ListValue) and isinstance(b, ListValue):
            for x, y in zip(a.items, b.items, strict=False):
                vx, vy = self.force(x), self.force(y)
                if self.equal(vx, vy, span):
                    continue
                return self.compare(vx, vy, span)
            return (len(a.items) > len(b.items)) - (len(a.items) < len(b.items))
        raise self.error(f"cannot compare {type_name(a)} with {type_name(b)}", span)

    # -- functions -------------------------------------------------------------
    def apply(self, fn: Value, arg: Thunk, span: SourceSpan | None) -> Value:
        if isinstance(fn, Closure):
            return self.call_closure(fn, arg, span)
        if isinstance(fn, PrimOp):
            args = (*fn.applied, arg)
            if len(args) < fn.arity:
                return PrimOp(fn.name, fn.arity, fn.fn, args)
            if fn.name in ("throw", "abort"):
                return fn.fn(span, *args)
            with self.frame(f"calling builtin '{fn.name}'"):
                return fn.fn(span, *args)
        if isinstance(fn, AttrsValue) and "__functor" in fn.attrs:
            functor = self.force(fn.attrs["__functor"])
            inner = self.apply(functor, Thunk.of(fn), span)
            return self.apply(inner, arg, span)
        raise self.error(
            f"attempt to call something which is not a function but {type_name(fn)}", span
        )

    def call_closure(self, fn: Closure, arg: Thunk, span: SourceSpan | None) -> Value:
        lam = fn.node
        if lam.formals is None:
            assert lam.param is not None
            return self.eval(lam.body, fn.env.child({lam.param: arg}))
        given = self.force(arg)
        if not isinstance(given, AttrsValue):
            raise self.error(
                f"value is {type_name(given)} while a set was expected "
                f"(the function at {lam.span} takes a set of arguments)",
                span,
            )
        vars: dict[str, Thunk] = {}
        scope = fn.env.child(vars)
        if lam.param is not None:
            vars[lam.param] = arg
        names = set()
        for f in lam.formals.formals:
            names.add(f.name)
            t = given.attrs.get(f.name)
            if t is not None:
                vars[f.name] = t
            elif f.default is not None:
                vars[f.name] = self.thunk(f.default, scope)
            else:
                raise self.error(
                    f"function at {lam.span} called without required argument '{f.name}'", span
                )
        if not lam.formals.ellipsis:
            for name in sorted(given.attrs):
                if name not in names:
                    close = difflib.get_close_matches(name, sorted(names), n=1)
                    raise self.error(
                        f"function at {lam.span} called with unexpected argument '{name}'",
                        span,
                        hint=f"did you mean '{close[0]}'?" if close else None,
                    )
        return self.eval(lam.body, scope)


def _is_num(v: Value) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def strip_indentation(parts: tuple[A.IndPiece | A.Interp, ...]) -> list[str | A.Interp]:
    """Nix's indentation stripping for ``''`` strings (parser.y, stripIndentation).

    Escapes and interpolations end a line's leading whitespace but are never
    stripped themselves; whitespace-only last lines are dropped.
    """
    if not parts:
        return []
    at_start = True
    min_indent = 1_000_000
    cur = 0
    for p in parts:
        if isinstance(p, A.Interp) or p.escaped:
            if at_start:
                at_start = False
                min_indent = min(min_indent, cur)
            continue
        for ch in p.text:
            if at_start:
                if ch == " ":
                    cur += 1
                elif ch == "\n":
                    cur = 0
                else:
                    at_start = False
                    min_indent = min(min_indent, cur)
            elif ch == "\n":
                at_start = True
                cur = 0
    out: list[str | A.Interp] = []
    at_start = True
    dropped = 0
    n = len(parts)
    for i, p in enumerate(parts):
        if isinstance(p, A.Interp):
            at_start = False
            dropped = 0
            out.append(p)
            continue
        buf: list[str] = []
        for ch in p.text:
            if at_start:
                if ch == " ":
                    if dropped >= min_indent:
                        buf.append(ch)
                    dropped += 1
                elif ch == "\n":
                    dropped = 0
                    buf.append(ch)
                else:
                    at_start = False
                    dropped = 0
                    buf.append(ch)
            else:
                buf.append(ch)
                if ch == "\n":
                    at_start = True
        s = "".join(buf)
        if i == n - 1:
            cut = s.rfind("\n")
            if cut != -1 and s[cut + 1 :].strip(" ") == "":
                s = s[: cut + 1]
        out.append(s)
    # Merge adjacent text pieces.
    merged: list[str | A.Interp] = []
    for x in out:
        if isinstance(x, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + x
        else:
            merged.append(x)
    return merged
