"""A hand-written lexer for the recipe language, plugged into lark's LALR parser.

Nix's lexical structure needs start conditions (strings nest expressions
through ``${ }``, which nest strings again), which lark's regex lexers cannot
express; so we tokenize here, with a mode stack as Nix's flex lexer does, and
let lark do the grammar. Token names match the ``%declare`` list in
``grammar.lark``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lark import Token
from lark.lexer import Lexer, LexerState

from reprobuild.errors import ParseError, SourceSpan
from reprobuild.lang.limits import limit_hint

KEYWORDS = {
    "if": "IF",
    "then": "THEN",
    "else": "ELSE",
    "assert": "ASSERT",
    "with": "WITH",
    "let": "LET",
    "in": "IN",
    "rec": "REC",
    "inherit": "INHERIT",
    "or": "OR_KW",
}

# Longest literal first, so "..." beats "." and "++" beats "+".
PUNCT = [
    ("...", "ELLIPSIS"),
    ("${", "DOLLAR_CURLY"),
    ("==", "EQEQ"),
    ("!=", "NEQ"),
    ("<=", "LEQ"),
    (">=", "GEQ"),
    ("&&", "AND"),
    ("||", "OR"),
    ("->", "IMPL"),
    ("//", "UPDATE"),
    ("++", "CONCAT"),
    ("{", "LBRACE"),
    ("}", "RBRACE"),
    ("[", "LBRACK"),
    ("]", "RBRACK"),
    ("(", "LPAR"),
    (")", "RPAR"),
    (";", "SEMI"),
    (":", "COLON"),
    (",", "COMMA"),
    (".", "DOT"),
    ("@", "AT"),
    ("=", "EQ"),
    ("?", "QUESTION"),
    ("<", "LT"),
    (">", "GT"),
    ("+", "PLUS"),
    ("-", "MINUS"),
    ("*", "STAR"),
    ("/", "SLASH"),
    ("!", "NOT"),
]

# The regular tokens, as in Nix's lexer.l; the longest match wins, ties go
# to the earlier entry (as with flex).
RE_ID = re.compile(r"[a-zA-Z_][a-zA-Z0-9_'\-]*")
RE_INT = re.compile(r"[0-9]+")
RE_FLOAT = re.compile(r"(([1-9][0-9]*\.[0-9]*)|(0?\.[0-9]+))([Ee][+-]?[0-9]+)?")
RE_PATH = re.compile(r"[a-zA-Z0-9._\-+]*(/[a-zA-Z0-9._\-+]+)+/?")
RE_PATH_CHARS = re.compile(r"[a-zA-Z0-9._\-+]*")
RE_HPATH = re.compile(r"~(/[a-zA-Z0-9._\-+]+)+/?")
RE_SPATH = re.compile(r"<[a-zA-Z0-9._\-+]+(/[a-zA-Z0-9._\-+]+)*>")
RE_WS = re.compile(r"[ \t\r\n]+")
RE_LINE_COMMENT = re.compile(r"#[^\r\n]*")
RE_BLOCK_COMMENT = re.compile(r"/\*([^*]|\*+[^*/])*\*+/")
RE_STR_CHUNK = re.compile(r"([^$\"\\]|\$[^{\"\\]|\\[\s\S]|\$\\[\s\S])+")
RE_IND_CHUNK = re.compile(r"([^$']|\$[^{']|'[^'$])+")

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


@dataclass(frozen=True)
class Comment:
    """A comment, kept so that ``fmt`` never loses one."""

    text: str
    line: int
    column: int
    end_line: int
    own_line: bool  # nothing but whitespace before it on its line


def unescape(raw: str) -> str:
    """Decode ``\\`` escapes of a double-quoted string chunk, as Nix's unescapeStr."""
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n:
            nxt = raw[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        elif c == "\r" and i + 1 < n and raw[i + 1] == "\n":
            out.append("\n")
            i += 2
        elif c == "\r":
            out.append("\n")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Tokenizer:
    """Turns recipe text into lark tokens; ``comments`` collects comments."""

    def __init__(self, text: str, file: str, max_nesting: int | None = None) -> None:
        self.text = text
        self.max_nesting = max_nesting  # refuse deeper brackets early
        self.file = file
        self.pos = 0
        self.line = 1
        self.col = 1
        self.comments: list[Comment] = []
        # Mode stack: "code" entries count brace depth; "str"/"ind" are strings.
        self.modes: list[list[object]] = [["code", 0]]
        # Open brackets (char, line, col), to say which one an EOF left open.
        self.brackets: list[tuple[str, int, int]] = []
        self.line_clean = True  # nothing but blanks so far on the current line
        # The run of path characters last scanned: [run_start, run_end).
        self.run_start = 0
        self.run_end = -1

    # -- position bookkeeping ---------------------------------------------
    def _advance(self, s: str) -> None:
        nl = s.count("\n")
        if nl:
            self.line += nl
            self.col = len(s) - s.rfind("\n")
            self.line_clean = True
        else:
            self.col += len(s)
        self.pos += len(s)

    def _token(self, kind: str, value: str, raw: str) -> Token:
        tok = Token(kind, value, self.pos, self.line, self.col)
        self._advance(raw)
        self.line_clean = False
        tok.end_line = self.line
        tok.end_column = self.col
        tok.end_pos = self.pos
        return tok

    def error(self, message: str, line: int | None = None, col: int | None = None) -> ParseError:
        line = self.line if line is None else line
        col = self.col if col is None else col
        lines = self.text.splitlines()
        src = lines[line - 1] if 0 < line <= len(lines) else ""
        return ParseError(message, SourceSpan(self.file, line, col), source_line=src)

    def _unterminated(self, what: str, closing: str) -> ParseError:
        mode = self.modes[-1]
        line, col = int(mode[1]), int(mode[2])  # type: ignore[call-overload]
        return self.error(f"unterminated {what}: no closing {closing}", line, col)

    # -- main loop ----------------------------------------------------------
    def tokens(self) -> Iterator[Token]:
        text = self.text
        while True:
            mode = self.modes[-1]
            if mode[0] == "str":
                tok = self._string_token()
            elif mode[0] == "ind":
                tok = self._ind_token()
            else:
                self._skip_trivia()
                if self.pos >= len(text):
                    if len(self.modes) > 1:
                        raise self.error("unexpected end of file: a '${' is not closed")
                    return
                tok = self._code_token()
            yield tok

    def _skip_trivia(self) -> None:
        text = self.text
        while self.pos < len(text):
            m = RE_WS.match(text, self.pos)
            if m:
                self._advance(m.group())
                continue
            c = text[self.pos]
            if c == "#":
                m = RE_LINE_COMMENT.match(text, self.pos)
                assert m
                self._comment(m.group())
                continue
            if text.startswith("/*", self.pos):
                m = RE_BLOCK_COMMENT.match(text, self.pos)
                if not m:
                    raise self.error("unterminated comment '/*'")
                self._comment(m.group())
                continue
            break

    def _comment(self, s: str) -> None:
        # Tracked, not searched for: a long line of comments must not cost
        # quadratic time.
        own_line = self.line_clean
        start_line, start_col = self.line, self.col
        self._advance(s)
        self.line_clean = False
        self.comments.append(Comment(s, start_line, start_col, self.line, own_line))

    def _code_token(self) -> Token:
        text = self.text
        pos = self.pos
        c = text[pos]
        mode = self.modes[-1]
        if c == '"':
            self.modes.append(["str", self.line, self.col])
            return self._token("STR_OPEN", '"', '"')
        if text.startswith("''", pos):
            m = re.compile(r"''( *\n)?").match(text, pos)
            assert m
            self.modes.append(["ind", self.line, self.col])
            return self._token("IND_OPEN", "''", m.group())
        # Longest match among the regular tokens (flex semantics).
        best_kind = ""
        best = ""
        for kind, rx in (
            ("ID", RE_ID),
            ("INT", RE_INT),
            ("FLOAT", RE_FLOAT),
            ("PATH", RE_PATH),
            ("HPATH", RE_HPATH),
            ("SPATH", RE_SPATH),
        ):
            if kind == "PATH" and not self._path_possible(pos):
                continue
            m = rx.match(text, pos)
            if m and len(m.group()) > len(best):
                best_kind, best = kind, m.group()
        for lit, kind in PUNCT:
            if text.startswith(lit, pos):
                if len(lit) > len(best):
                    best_kind, best = kind, lit
                break
        if not best:
            raise self.error(f"unexpected character {c!r}")
        if best_kind == "ID" and best in KEYWORDS:
            best_kind = KEYWORDS[best]
        if best_kind == "PATH" and best.endswith("/"):
            raise self.error(f"path '{best}' has a trailing slash")
        if best_kind in ("HPATH", "SPATH"):
            raise self.error(
                f"'{best}' is not allowed: recipes may only name paths relative to themselves"
            )
        if best_kind in ("LBRACE", "LBRACK", "LPAR", "DOLLAR_CURLY"):
            self.brackets.append((best, self.line, self.col))
            self._check_brackets()
        elif best_kind in ("RBRACE", "RBRACK", "RPAR") and self.brackets:
            self.brackets.pop()
        if best_kind == "LBRACE" or best_kind == "DOLLAR_CURLY":
            mode[1] = int(mode[1]) + 1  # type: ignore[call-overload]
        elif best_kind == "RBRACE":
            if mode[1] == 0 and len(self.modes) > 1:
                # Closes a ${ } inside a string: back to string mode.
                self.modes.pop()
                return self._token("RBRACE", "}", "}")
            mode[1] = int(mode[1]) - 1  # type: ignore[call-overload]
        return self._token(best_kind, best, best)

    def _path_possible(self, pos: int) -> bool:
        """Whether a path can start at ``pos``: one needs a '/' right after
        the run of path characters ``pos`` is in. The run is remembered, so
        ``a+b+c+...`` (all path characters) is scanned once, not once per
        token: that was quadratic."""
        if not self.run_start <= pos <= self.run_end:
            m = RE_PATH_CHARS.match(self.text, pos)
            assert m
            self.run_start, self.run_end = pos, m.end()
        return self.text.startswith("/", self.run_end)

    def _check_brackets(self) -> None:
        """Refuse too deep brackets now: parsing 100000 of them first is slow."""
        if self.max_nesting is not None and len(self.brackets) > self.max_nesting:
            err = self.error(f"expression nested more than {self.max_nesting} levels deep")
            err.hint = limit_hint("max_nesting", self.max_nesting)
            raise err

    def _open_interpolation(self) -> Token:
        self.brackets.append(("${", self.line, self.col))
        self._check_brackets()
        tok = self._token("DOLLAR_CURLY", "${", "${")
        self.modes.append(["code", 0])
        return tok

    def _string_token(self) -> Token:
        text = self.text
        pos = self.pos
        if pos >= len(text):
            raise self._unterminated("string", "'\"'")
        if text.startswith('"', pos):
            self.modes.pop()
            return self._token("STR_CLOSE", '"', '"')
        if text.startswith("${", pos):
            return self._open_interpolation()
        m = RE_STR_CHUNK.match(text, pos)
        if m:
            raw = m.group()
            # A chunk ending in "$" right before the closing quote is fine; one
            # ending in "$" before "{" can't happen (the regex excludes it).
            return self._token("STR_TEXT", unescape(raw), raw)
        # Only "$" or "\" right at end of input remain.
        raw = text[pos:]
        if not raw.strip("$\\"):
            raise self._unterminated("string", "'\"'")
        return self._token("STR_TEXT", unescape(raw[:1]), raw[:1])

    def _ind_token(self) -> Token:
        text = self.text
        pos = self.pos
        if pos >= len(text):
            raise self._unterminated("indented string", "\"''\"")
        if text.startswith("''$", pos):
            return self._token("IND_ESC", "$", "''$")
        if text.startswith("'''", pos):
            return self._token("IND_ESC", "''", "'''")
        if text.startswith("''\\", pos):
            if pos + 3 >= len(text):
                raise self._unterminated("indented string", "\"''\"")
            raw = text[pos : pos + 4]
            return self._token("IND_ESC", unescape(raw[2:]), raw)
        if text.startswith("''", pos):
            self.modes.pop()
            return self._token("IND_CLOSE", "''", "''")
        if text.startswith("${", pos):
            return self._open_interpolation()
        m = RE_IND_CHUNK.match(text, pos)
        if m:
            return self._token("IND_TEXT", m.group(), m.group())
        # A lone "$" or "'" (not starting ${ or '').
        return self._token("IND_ESC", text[pos], text[pos])


class RecipeLexer(Lexer):
    """Adapter so lark's LALR parser pulls tokens from :class:`Tokenizer`."""

    __future_interface__ = 2

    def __init__(self, lexer_conf: object) -> None:
        pass

    def lex(self, lexer_state: LexerState, parser_state: object) -> Iterator[Token]:
        tokenizer = lexer_state.text  # we pass the Tokenizer itself as the "text"
        assert isinstance(tokenizer, Tokenizer)
        return tokenizer.tokens()
