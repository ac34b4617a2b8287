"""Canonical formatting of recipes.

Prints the surface syntax tree with two-space indentation; a set, list or
function pattern goes on one line when it fits and holds no comment, else one
item per line. Comments are never dropped: each is printed on its own line
before the next item that follows it in the source. Parentheses are kept as
written, so the printed text parses to the same tree; formatting twice
changes nothing.
"""

from __future__ import annotations

import bisect
import dataclasses

from reprobuild.errors import SourceSpan
from reprobuild.lang import ast as A
from reprobuild.lang.lexer import KEYWORDS, RE_ID, Comment
from reprobuild.lang.limits import recursion_room
from reprobuild.lang.parse import FRAMES_PER_NESTING, Parsed

WIDTH = 100
MAX_FLAT_BINDS = 2  # more bindings than this: one per line
IND = "  "


def _pos(span: SourceSpan) -> tuple[int, int]:
    return (span.line, span.column)


def _end(span: SourceSpan) -> tuple[int, int]:
    if span.end_line is None or span.end_column is None:
        return (span.line, span.column + 1)
    return (span.end_line, span.end_column)


class Formatter:
    def __init__(self, parsed: Parsed) -> None:
        self.comments = sorted(parsed.comments, key=lambda c: (c.line, c.column))
        self.comment_pos = [(c.line, c.column) for c in self.comments]
        self.next_comment = 0
        # flat() of each node, once: expr() asks for the flat form at every
        # level, and a string's flat form formats its interpolations, so
        # without this "${"${"${...}"}"}" took time exponential in the depth.
        self.flat_cache: dict[A.Node, str | None] = {}

    # -- comments ---------------------------------------------------------------
    def has_comments(self, span: SourceSpan) -> bool:
        start, end = _pos(span), _end(span)
        i = bisect.bisect_left(self.comment_pos, start)
        return i < len(self.comment_pos) and self.comment_pos[i] < end

    def take_comments(self, before: tuple[int, int] | None, indent: str) -> str:
        """Comments not yet printed that start before ``before`` (None: all)."""
        out = []
        while self.next_comment < len(self.comments):
            c = self.comments[self.next_comment]
            if before is not None and (c.line, c.column) >= before:
                break
            out.append(_comment_text(c, indent))
            self.next_comment += 1
        return "".join(out)

    # -- entry -------------------------------------------------------------------
    def format(self, node: A.Node) -> str:
        head = self.take_comments(_pos(node.span), "")
        body = self.expr(node, "")
        tail = self.take_comments(None, "")
        return head + body + "\n" + tail

    # -- expressions --------------------------------------------------------------
    def expr(self, n: A.Node, indent: str, col: int | None = None) -> str:
        """``col``: where on its line the expression starts (default: the indent)."""
        flat = self.flat(n)
        start = len(indent) if col is None else col
        if flat is not None and start + len(flat) < WIDTH:
            return flat
        if isinstance(n, A.AttrSet):
            return self.attrset(n, indent)
        if isinstance(n, A.List):
            return self.list_(n, indent)
        if isinstance(n, A.Let):
            inner = indent + IND
            binds = self.binds(n.binds, inner, _pos(n.body.span))
            return f"let\n{binds}{indent}in\n{indent}{self.expr(n.body, indent)}"
        if isinstance(n, A.Lambda):
            return f"{self.lambda_head(n, indent)}\n{indent}{self.expr(n.body, indent)}"
        if isinstance(n, A.With):
            return f"with {self.expr(n.env, indent)};\n{indent}{self.expr(n.body, indent)}"
        if isinstance(n, A.Assert):
            return f"assert {self.expr(n.cond, indent)};\n{indent}{self.expr(n.body, indent)}"
        if isinstance(n, A.If):
            inner = indent + IND
            return (
                f"if {self.expr(n.cond, inner)} then\n{inner}{self.expr(n.then, inner)}\n"
                f"{indent}else\n{inner}{self.expr(n.else_, inner)}"
            )
        if isinstance(n, A.Paren):
            return f"({self.expr(n.expr, indent + IND)})"
        if isinstance(n, A.Apply):
            return f"{self.expr(n.fn, indent)} {self.expr(n.arg, indent)}"
        if isinstance(n, A.BinOp):
            return f"{self.expr(n.left, indent)} {n.op} {self.expr(n.right, indent)}"
        if isinstance(n, A.UnOp):
            return f"{n.op}{self.expr(n.expr, indent)}"
        if isinstance(n, A.Select):
            s = f"{self.expr(n.expr, indent)}.{self.attrpath(n.path, indent)}"
            if n.default is not None:
                s += f" or {self.expr(n.default, indent)}"
            return s
        if isinstance(n, A.HasAttr):
            return f"{self.expr(n.expr, indent)} ? {self.attrpath(n.path, indent)}"
        return self.atom(n, indent)

    def flat(self, n: A.Node) -> str | None:
        """The one-line form, or None where a line break is required."""
        if n in self.flat_cache:
            return self.flat_cache[n]
        taken = self.next_comment
        result = self._flat(n)
        if self.next_comment == taken:  # no side effect: the same every time
            self.flat_cache[n] = result
        return result

    def _flat(self, n: A.Node) -> str | None:
        if isinstance(n, A.AttrSet):
            if not n.binds:
                return "rec { }" if n.rec else "{ }"
            if (
                len(n.binds) > MAX_FLAT_BINDS
                or self.has_comments(n.span)
                or any(isinstance(b, A.Binding) and _is_block(b.value) for b in n.binds)
            ):
                return None
            parts = [self.flat_bind(b) for b in n.binds]
            if any(p is None for p in parts):
                return None
            return ("rec " if n.rec else "") + "{ " + " ".join(p for p in parts if p) + " }"
        if isinstance(n, A.List):
            if not n.items:
                return "[ ]"
            if self.has_comments(n.span):
                return None
            items = [self.flat(x) for x in n.items]
            if any(x is None for x in items):
                return None
            return "[ " + " ".join(x for x in items if x) + " ]"
        if isinstance(n, A.Let):
            return None
        if isinstance(n, A.Lambda):
            head = self.lambda_head(n, "") if n.formals is None or not n.formals.formals else None
            if n.formals is not None and n.formals.formals:
                head = self.flat_lambda_head(n)
            body = self.flat(n.body)
            if head is None or body is None:
                return None
            return f"{head} {body}"
        if isinstance(n, A.With | A.Assert):
            return None
        if isinstance(n, A.If):
            parts = [self.flat(n.cond), self.flat(n.then), self.flat(n.else_)]
            if any(p is None for p in parts):
                return None
            return f"if {parts[0]} then {parts[1]} else {parts[2]}"
        if isinstance(n, A.Paren):
            inner = self.flat(n.expr)
            return None if inner is None else f"({inner})"
        if isinstance(n, A.Apply):
            fn, arg = self.flat(n.fn), self.flat(n.arg)
            return None if fn is None or arg is None else f"{fn} {arg}"
        if isinstance(n, A.BinOp):
            left, right = self.flat(n.left), self.flat(n.right)
            return None if left is None or right is None else f"{left} {n.op} {right}"
        if isinstance(n, A.UnOp):
            inner = self.flat(n.expr)
            return None if inner is None else f"{n.op}{inner}"
        if isinstance(n, A.Select):
            base = self.flat(n.expr)
            path = self.attrpath(n.path, "")
            if base is None or "\n" in path:
                return None
            s = f"{base}.{path}"
            if n.default is not None:
                d = self.flat(n.default)
                if d is None:
                    return None
                s += f" or {d}"
            return s
        if isinstance(n, A.HasAttr):
            base = self.flat(n.expr)
            return None if base is None else f"{base} ? {self.attrpath(n.path, '')}"
        s = self.atom(n, "")
        return None if "\n" in s else s

    def atom(self, n: A.Node, indent: str) -> str:
        if isinstance(n, A.Int):
            return str(n.value)
        if isinstance(n, A.Float):
            return n.text
        if isinstance(n, A.Path):
            return n.text
        if isinstance(n, A.Var):
            return n.name
        if isinstance(n, A.Str):
            return self.string(n, indent)
        if isinstance(n, A.IndStr):
            out = [n.opening]
            for p in n.parts:
                if isinstance(p, A.Interp):
                    out.append("${" + self.expr(p.expr, indent) + "}")
                else:
                    out.append(p.raw)
            out.append("''")
            return "".join(out)
        raise TypeError(f"cannot format {type(n).__name__}")  # pragma: no cover

    def string(self, n: A.Str, indent: str) -> str:
        out = ['"']
        for i, p in enumerate(n.parts):
            if isinstance(p, A.Interp):
                out.append("${" + self.expr(p.expr, indent) + "}")
                continue
            text = (
                p.replace("\\", "\\\\")
                .replace('"', '\\"')
                .replace("${", "\\${")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
                .replace("\t", "\\t")
            )
            nxt = n.parts[i + 1] if i + 1 < len(n.parts) else None
            if text.endswith("$") and isinstance(nxt, A.Interp):
                text = text[:-1] + "\\$"
            out.append(text)
        out.append('"')
        return "".join(out)

    # -- pieces ------------------------------------------------------------------
    def attrname(self, a: A.AttrName, indent: str) -> str:
        if isinstance(a, str):
            if RE_ID.fullmatch(a) and (a not in KEYWORDS or a == "or"):
                return a
            return self.string(A.Str((a,), span=SourceSpan("", 0, 0)), indent)
        if isinstance(a, A.Interp):
            return "${" + self.expr(a.expr, indent) + "}"
        return self.string(a, indent)

    def attrpath(self, path: tuple[A.AttrName, ...], indent: str) -> str:
        return ".".join(self.attrname(a, indent) for a in path)

    def flat_bind(self, b: A.Bind) -> str | None:
        if isinstance(b, A.Inherit):
            return self.inherit(b, "")
        v = self.flat(b.value)
        return None if v is None else f"{self.attrpath(b.path, '')} = {v};"

    def inherit(self, b: A.Inherit, indent: str) -> str:
        names = "".join(" " + self.attrname(x, indent) for x in b.names)
        if b.source is None:
            return f"inherit{names};"
        return f"inherit ({self.expr(b.source, indent + IND)}){names};"

    def blank_line(self, prev_end: int | None, span: SourceSpan) -> str:
        """Keep one blank line where the source had at least one."""
        if prev_end is None:
            return ""
        first = span.line
        if self.next_comment < len(self.comments):
            c = self.comments[self.next_comment]
            if (c.line, c.column) < _pos(span):
                first = min(first, c.line)
        return "\n" if first > prev_end + 1 else ""

    def binds(self, binds: tuple[A.Bind, ...], indent: str, end: tuple[int, int]) -> str:
        out = []
        prev_end: int | None = None
        for b in binds:
            out.append(self.blank_line(prev_end, b.span))
            out.append(self.take_comments(_pos(b.span), indent))
            if isinstance(b, A.Inherit):
                out.append(indent + self.inherit(b, indent) + "\n")
            else:
                name = self.attrpath(b.path, indent)
                value = self.expr(b.value, indent, len(indent) + len(name) + 3)
                out.append(f"{indent}{name} = {value};\n")
            prev_end = b.span.end_line or b.span.line
        out.append(self.take_comments(end, indent))
        return "".join(out)

    def attrset(self, n: A.AttrSet, indent: str) -> str:
        inner = indent + IND
        head = "rec {" if n.rec else "{"
        return f"{head}\n{self.binds(n.binds, inner, _end(n.span))}{indent}}}"

    def list_(self, n: A.List, indent: str) -> str:
        inner = indent + IND
        out = ["[\n"]
        prev_end: int | None = None
        for item in n.items:
            out.append(self.blank_line(prev_end, item.span))
            out.append(self.take_comments(_pos(item.span), inner))
            prev_end = item.span.end_line or item.span.line
            out.append(f"{inner}{self.expr(item, inner)}\n")
        out.append(self.take_comments(_end(n.span), inner))
        out.append(f"{indent}]")
        return "".join(out)

    def flat_lambda_head(self, n: A.Lambda) -> str | None:
        assert n.formals is not None
        if self.has_comments(n.formals.span):
            return None
        parts = []
        for f in n.formals.formals:
            if f.default is None:
                parts.append(f.name)
            else:
                d = self.flat(f.default)
                if d is None:
                    return None
                parts.append(f"{f.name} ? {d}")
        if n.formals.ellipsis:
            parts.append("...")
        pattern = "{ " + ", ".join(parts) + " }"
        return self._with_at(n, pattern) + ":"

    def lambda_head(self, n: A.Lambda, indent: str) -> str:
        if n.formals is None:
            return f"{n.param}:"
        if not n.formals.formals:
            pattern = "{ ... }" if n.formals.ellipsis else "{ }"
            return self._with_at(n, pattern) + ":"
        flat = self.flat_lambda_head(n)
        if flat is not None and len(indent) + len(flat) <= WIDTH:
            return flat
        inner = indent + IND
        lines = ["{\n"]
        for f in n.formals.formals:
            lines.append(self.take_comments(_pos(f.span), inner))
            if f.default is None:
                lines.append(f"{inner}{f.name},\n")
            else:
                lines.append(f"{inner}{f.name} ? {self.expr(f.default, inner)},\n")
        if n.formals.ellipsis:
            lines.append(f"{inner}...\n")
        lines.append(self.take_comments(_end(n.formals.span), inner))
        lines.append(f"{indent}}}")
        return self._with_at(n, "".join(lines)) + ":"

    @staticmethod
    def _with_at(n: A.Lambda, pattern: str) -> str:
        if n.param is None:
            return pattern
        return f"{n.param}@{pattern}" if n.at_first else f"{pattern}@{n.param}"


def _is_block(n: A.Node) -> bool:
    return (isinstance(n, A.AttrSet) and bool(n.binds)) or isinstance(n, A.Let)


def _comment_text(c: Comment, indent: str) -> str:
    if c.text.startswith("#"):
        return f"{indent}{c.text.rstrip()}\n"
    lines = c.text.split("\n")
    return f"{indent}{lines[0]}" + "".join(f"\n{line}" for line in lines[1:]) + "\n"


def format_source(parsed: Parsed) -> str:
    """The canonical text of a parsed recipe."""
    with recursion_room(FRAMES_PER_NESTING * _nesting(parsed.tree)):
        return Formatter(parsed).format(parsed.tree)


def _nesting(root: A.Node) -> int:
    """How deeply the tree nests (the parser bounded it), without recursing."""
    deepest = 0
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        x, d = stack.pop()
        deepest = max(deepest, d)
        if isinstance(x, A.Node | A.IndPiece):
            stack.extend((getattr(x, f.name), d + 1) for f in dataclasses.fields(x))
        elif isinstance(x, tuple):
            stack.extend((y, d) for y in x)
    return deepest
