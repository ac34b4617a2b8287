"""Recipe text -> syntax tree (:mod:`reprobuild.lang.ast`).

The LALR tables are built once and cached on disk by lark (keyed by the
grammar's hash), so ``reprobuild eval`` starts fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from reprobuild.errors import ParseError, SourceSpan
from reprobuild.lang import ast as A
from reprobuild.lang.lexer import Comment, RecipeLexer, Tokenizer
from reprobuild.lang.limits import EvalLimits, limit_hint, recursion_room
from reprobuild.lang.lower import static_name

GRAMMAR = Path(__file__).with_name("grammar.lark")

# Python frames per level of nesting that building (and formatting) may take.
FRAMES_PER_NESTING = 8

# lark's parse trees are loosely typed; the builder checks shapes as it goes.
LarkNode = Any

# What the user should read instead of lark's terminal names.
TOKEN_NAMES = {
    "ID": "an identifier",
    "INT": "an integer",
    "FLOAT": "a float",
    "PATH": "a path",
    "STR_OPEN": "'\"'",
    "STR_CLOSE": "'\"'",
    "IND_OPEN": "\"''\"",
    "IND_CLOSE": "\"''\"",
    "DOLLAR_CURLY": "'${'",
    "$END": "end of file",
    "ELLIPSIS": "'...'",
    "EQEQ": "'=='",
    "NEQ": "'!='",
    "LEQ": "'<='",
    "GEQ": "'>='",
    "AND": "'&&'",
    "OR": "'||'",
    "IMPL": "'->'",
    "UPDATE": "'//'",
    "CONCAT": "'++'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LBRACK": "'['",
    "RBRACK": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "SEMI": "';'",
    "COLON": "':'",
    "COMMA": "','",
    "DOT": "'.'",
    "AT": "'@'",
    "EQ": "'='",
    "QUESTION": "'?'",
    "LT": "'<'",
    "GT": "'>'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "NOT": "'!'",
    "OR_KW": "'or'",
}


def _cache_file() -> str | bool:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "reprobuild")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError:
        return False
    if not os.access(directory, os.W_OK):
        return False
    return os.path.join(directory, "grammar.lark-cache")


@cache
def _parser() -> Lark:
    grammar = GRAMMAR.read_text(encoding="utf-8")
    try:
        return Lark(
            grammar,
            parser="lalr",
            lexer=RecipeLexer,
            propagate_positions=True,
            cache=_cache_file(),
        )
    except (OSError, EOFError, ValueError):
        # A damaged or unwritable cache must never stop a build.
        return Lark(grammar, parser="lalr", lexer=RecipeLexer, propagate_positions=True)


@dataclass(frozen=True)
class Parsed:
    """A parsed file: its tree, its comments (for fmt) and its text (for errors)."""

    file: str
    text: str
    tree: A.Node
    comments: tuple[Comment, ...]


def parse(text: str, file: str = "<string>", *, max_nesting: int | None = None) -> Parsed:
    """Parse recipe text; raises :class:`ParseError` with file:line:col.

    ``max_nesting`` (default: :class:`EvalLimits`, from the environment)
    bounds how deeply expressions nest, so that building the tree, checking
    it and formatting it (all recursive) stay within Python's stack.
    """
    if max_nesting is None:
        max_nesting = EvalLimits.from_env().max_nesting
    tokenizer = Tokenizer(text, file, max_nesting)
    try:
        tree = _parser().parse(tokenizer)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, tokenizer) from None
    except ParseError:
        raise
    _check_nesting(tree.children[0], max_nesting, tokenizer)
    try:
        with recursion_room(FRAMES_PER_NESTING * max_nesting):
            node = _Builder(file, tokenizer).build(tree.children[0])
    except RecursionError:  # pragma: no cover - _check_nesting bounds the depth
        raise tokenizer.error("expression nested too deeply", 1, 1) from None
    return Parsed(file, text, node, tuple(tokenizer.comments))


def _check_nesting(root: LarkNode, limit: int, tokenizer: Tokenizer) -> None:
    """Refuse a tree deeper than ``limit`` (iteratively: it may be very deep).

    ``a.b.c = v;`` counts as three levels, as lowering nests it so.
    """
    stack: list[tuple[LarkNode, int]] = [(root, 1)]
    while stack:
        t, depth = stack.pop()
        if depth > limit:
            tok = _first_token_iter(t)
            err = tokenizer.error(
                f"expression nested more than {limit} levels deep",
                tok.line if tok is not None and tok.line else 1,
                tok.column if tok is not None and tok.column else 1,
            )
            err.hint = limit_hint("max_nesting", limit)
            raise err
        extra = 0
        if t.data == "binding":
            path = t.children[0]
            extra = sum(1 for c in path.children if isinstance(c, Tree))
        for c in t.children:
            if isinstance(c, Tree):
                stack.append((c, depth + 1 + extra))


def _first_token_iter(t: LarkNode) -> Token | None:
    stack = [t]
    while stack:
        x = stack.pop()
        if isinstance(x, Token):
            return x
        stack.extend(reversed(x.children))
    return None


def parse_file(
    path: Path, display: str | None = None, *, max_nesting: int | None = None
) -> Parsed:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"{display or path}: not UTF-8 text (byte {exc.start})",
            hint="recipes are UTF-8 text files",
        ) from None
    return parse(text, display or str(path), max_nesting=max_nesting)


def _syntax_error(exc: UnexpectedInput, tokenizer: Tokenizer) -> ParseError:
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            what = "end of file"
            line, col = tokenizer.line, tokenizer.col
        else:
            what = f"'{tok.value}'" if tok.type not in ("STR_TEXT", "IND_TEXT") else "text"
            line, col = tok.line or 1, tok.column or 1
        expected = sorted(
            {TOKEN_NAMES.get(t, t.lower()) for t in exc.expected if not t.startswith("__")}
        )
        msg = f"syntax error, unexpected {what}"
        if 0 < len(expected) <= 6:
            msg += ", expecting " + " or ".join(expected)
        err = tokenizer.error(msg, line, col)
        if tok.type == "$END" and tokenizer.brackets:
            char, bl, bc = tokenizer.brackets[-1]
            err.hint = f"the '{char}' at {tokenizer.file}:{bl}:{bc} is never closed"
        return err
    if isinstance(exc, UnexpectedEOF):
        return tokenizer.error("syntax error, unexpected end of file")
    if isinstance(exc, UnexpectedCharacters):  # pragma: no cover - our lexer raises first
        return tokenizer.error("syntax error", exc.line, exc.column)
    return tokenizer.error("syntax error")


class _Builder:
    """lark parse tree -> frozen AST nodes with spans."""

    def __init__(self, file: str, tokenizer: Tokenizer) -> None:
        self.file = file
        self.tokenizer = tokenizer

    def span(self, item: LarkNode) -> SourceSpan:
        if isinstance(item, Token):
            return SourceSpan(
                self.file, item.line or 1, item.column or 1, item.end_line, item.end_column
            )
        meta = item.meta
        if not meta.empty:
            # propagate_positions already found the first token: walking down
            # to it again for every node is quadratic in a long chain a+b+c...
            return SourceSpan(
                self.file, meta.line or 1, meta.column or 1, meta.end_line, meta.end_column
            )
        tok = _first_token(item)  # pragma: no cover - every node has a token
        return SourceSpan(self.file, tok.line or 1, tok.column or 1)

    def error(self, message: str, item: LarkNode) -> ParseError:
        sp = self.span(item)
        return self.tokenizer.error(message, sp.line, sp.column)

    def build(self, t: LarkNode) -> A.Node:
        if isinstance(t, Token):  # pragma: no cover - every token is wrapped
            raise self.error("unexpected token", t)
        kind = t.data
        c = t.children
        sp = self.span(t)
        if kind == "int_":
            digits = str(c[0]).lstrip("0")
            # Python refuses int() of more than 4300 digits; any literal past
            # 19 digits is too large anyway.
            value = int(digits[:20] or "0")
            if len(digits) > 19 or value >= 2**63:
                shown = c[0] if len(c[0]) <= 40 else c[0][:20] + "..."
                raise self.error(f"integer literal {shown} is too large", t)
            return A.Int(value, span=sp)
        if kind == "float_":
            return A.Float(float(c[0]), str(c[0]), span=sp)
        if kind == "path":
            text = str(c[0])
            if text.startswith("/"):
                raise self.error(
                    f"absolute path '{text}' is not allowed: recipes name paths relative to "
                    "themselves so they build the same on every machine",
                    t,
                )
            return A.Path(text, span=sp)
        if kind == "var":
            return A.Var(str(c[0]), span=sp)
        if kind == "string":
            return self.string(t)
        if kind == "ind_string":
            return self.ind_string(t)
        if kind == "paren":
            return A.Paren(self.build(c[1]), span=sp)
        if kind == "rec_attrs":
            return A.AttrSet(True, self.binds(c[2]), span=sp)
        if kind == "attrs":
            return A.AttrSet(False, self.binds(c[1]), span=sp)
        if kind == "empty_attrs":
            return A.AttrSet(False, (), span=sp)
        if kind == "list_":
            return A.List(tuple(self.build(x) for x in c[1:-1]), span=sp)
        if kind == "select":
            return A.Select(self.build(c[0]), self.attrpath(c[2]), span=self.span(c[1]))
        if kind == "select_or":
            return A.Select(
                self.build(c[0]), self.attrpath(c[2]), self.build(c[4]), span=self.span(c[1])
            )
        if kind == "has_attr":
            return A.HasAttr(self.build(c[0]), self.attrpath(c[2]), span=self.span(c[1]))
        if kind == "apply":
            return A.Apply(self.build(c[0]), self.build(c[1]), span=sp)
        if kind == "binop":
            return A.BinOp(str(c[1]), self.build(c[0]), self.build(c[2]), span=self.span(c[1]))
        if kind == "unop":
            return A.UnOp(str(c[0]), self.build(c[1]), span=sp)
        if kind == "lambda_simple":
            return A.Lambda(str(c[0]), None, self.build(c[2]), span=sp)
        if kind == "lambda_formals":
            return A.Lambda(None, self.formals(c[0]), self.build(c[2]), span=sp)
        if kind == "lambda_formals_at":
            return A.Lambda(str(c[2]), self.formals(c[0]), self.build(c[4]), span=sp)
        if kind == "lambda_at_formals":
            return A.Lambda(str(c[0]), self.formals(c[2]), self.build(c[4]), True, span=sp)
        if kind == "assert_":
            return A.Assert(self.build(c[1]), self.build(c[3]), span=sp)
        if kind == "with_":
            return A.With(self.build(c[1]), self.build(c[3]), span=sp)
        if kind == "let_":
            return A.Let(self.binds(c[1]), self.build(c[3]), span=sp)
        if kind == "if_":
            return A.If(self.build(c[1]), self.build(c[3]), self.build(c[5]), span=sp)
        raise self.error(f"unsupported construct {kind}", t)  # pragma: no cover

    def string(self, t: LarkNode) -> A.Str:
        parts: list[str | A.Interp] = []
        for p in t.children[1:-1]:
            if isinstance(p, Token):
                if parts and isinstance(parts[-1], str):
                    parts[-1] += str(p)
                else:
                    parts.append(str(p))
            else:
                parts.append(self.interp(p))
        return A.Str(tuple(parts), span=self.span(t))

    def ind_string(self, t: LarkNode) -> A.IndStr:
        opening_tok = t.children[0]
        assert isinstance(opening_tok, Token)
        text = self.tokenizer.text
        opening = text[opening_tok.start_pos : opening_tok.end_pos]
        parts: list[A.IndPiece | A.Interp] = []
        for p in t.children[1:-1]:
            if isinstance(p, Token):
                raw = text[p.start_pos : p.end_pos]
                parts.append(A.IndPiece(str(p), p.type == "IND_ESC", raw))
            else:
                parts.append(self.interp(p))
        return A.IndStr(tuple(parts), opening, span=self.span(t))

    def interp(self, t: LarkNode) -> A.Interp:
        return A.Interp(self.build(t.children[1]), span=self.span(t))

    def attrpath(self, t: LarkNode) -> tuple[A.AttrName, ...]:
        out: list[A.AttrName] = []
        for a in t.children:
            if isinstance(a, Token):
                continue  # the dots
            if a.data == "attr_id":
                out.append(str(a.children[0]))
            elif a.data == "attr_str":
                s = self.string(a.children[0])
                if all(isinstance(x, str) for x in s.parts):
                    out.append(s)
                else:
                    out.append(s)
            else:
                out.append(self.interp(a.children[0]))
        return tuple(out)

    def binds(self, t: LarkNode) -> tuple[A.Bind, ...]:
        out: list[A.Bind] = []
        for b in t.children:
            assert isinstance(b, Tree)
            sp = self.span(b)
            if b.data == "binding":
                out.append(
                    A.Binding(self.attrpath(b.children[0]), self.build(b.children[2]), span=sp)
                )
            elif b.data == "inherit":
                out.append(A.Inherit(self.inherit_names(b.children[1:-1]), None, span=sp))
            else:
                source = self.build(b.children[2])
                out.append(A.Inherit(self.inherit_names(b.children[4:-1]), source, span=sp))
        return tuple(out)

    def inherit_names(self, items: list[LarkNode]) -> tuple[A.AttrName, ...]:
        names: list[A.AttrName] = []
        for it in items:
            assert isinstance(it, Tree)
            inner = it.children[0]
            if isinstance(inner, Token):
                names.append(str(inner))
            elif inner.data == "interp":
                # ``inherit ${"a"}``: allowed when it is only a string (as in Nix)
                interp = self.interp(inner)
                if static_name(interp) is None:
                    raise self.error("dynamic attributes are not allowed in inherit", inner)
                names.append(interp)
            else:
                s = self.string(inner)
                if not all(isinstance(x, str) for x in s.parts):
                    raise self.error("dynamic attributes are not allowed in inherit", inner)
                names.append(s)
        return tuple(names)

    def formals(self, t: LarkNode) -> A.Formals:
        sp = self.span(t)
        first = t.children[0]
        if isinstance(first, Tree) and first.data == "empty_braces":
            return A.Formals((), False, span=sp)
        fl = t.children[1]
        assert isinstance(fl, Tree)
        formals: list[A.Formal] = []
        ellipsis = False
        seen: set[str] = set()
        for f in fl.children:
            if isinstance(f, Token):
                if f.type == "ELLIPSIS":
                    ellipsis = True
                continue
            name = str(f.children[0])
            if name in seen:
                raise self.error(f"duplicate formal function argument '{name}'", f)
            seen.add(name)
            default = self.build(f.children[2]) if len(f.children) > 2 else None
            formals.append(A.Formal(name, default, span=self.span(f)))
        return A.Formals(tuple(formals), ellipsis, span=sp)


def _first_token(t: LarkNode) -> Token:
    for c in t.children:
        if isinstance(c, Token):
            return c
        if isinstance(c, Tree):
            try:
                return _first_token(c)
            except ValueError:
                continue
    raise ValueError("empty tree")
