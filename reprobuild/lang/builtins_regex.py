"""``match`` and ``split``: POSIX extended regular expressions, as Nix has them.

Nix compiles a pattern with C++'s ``std::regex(re, std::regex::extended)``
(libstdc++) and runs it over the bytes of a string. Python's ``re`` differs
from that in ways that change results, so a pattern is translated for the
``regex`` module in its POSIX mode and run over the string's UTF-8 bytes
(each byte one character, as Latin-1):

- leftmost-longest: ``split "a|ab" "abc"`` splits off ``ab`` (``re`` takes
  ``a``); among the longest matches the groups are those found first, which
  is what libstdc++'s depth-first matcher keeps too;
- a backslash escapes only ``^ $ \\ . * + ? ( ) [ { |`` (``\\d`` is an error,
  not a digit) and a backslash inside a bracket expression is itself;
- ``$`` is the end of the string only (``re``'s also matches before a final
  newline), ``.`` matches a newline, and classes such as ``[[:alpha:]]`` are
  ASCII only (the C locale);
- ``a**`` repeats ``a*`` (``re`` would read ``*?`` as a lazy quantifier);
  ERE has no back-references (``\\1`` is an error) and ``(?`` is an error;
- ``.`` matches one byte, so it can cut a multi-byte character; a captured
  piece that is not valid UTF-8 is an error here (Nix returns the bytes).

Known deviations: POSIX's rule for the groups of an ambiguous match (each
group as long as possible, left to right) is not what libstdc++ does either;
equivalence classes ``[=a=]`` and collating symbols ``[.a.]`` are taken as
the character they name. A regular expression that runs for more than
:data:`TIMEOUT` seconds is an error.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import regex

from reprobuild.errors import SourceSpan
from reprobuild.lang.builtins_strings import from_utf8, utf8
from reprobuild.lang.primops import WORK_PER_STEP, builtin
from reprobuild.lang.values import ListValue, Thunk, Value

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

G = "strings"
TIMEOUT = 10.0  # seconds one match or search may take (a pathological pattern)
# libstdc++'s class names: POSIX's, and "w", "d", "s" as in its regex_traits.
CLASSES = {
    **{c: f"[:{c}:]" for c in ("alnum", "alpha", "blank", "cntrl", "digit", "graph")},
    **{c: f"[:{c}:]" for c in ("lower", "print", "punct", "space", "upper", "xdigit")},
    "w": "[:alnum:]_",
    "d": "[:digit:]",
    "s": "[:space:]",
}
# What a backslash may escape in an ERE (libstdc++: anything else is an error).
ESCAPABLE = frozenset("^$\\.*+?()[{|")
FLAGS = regex.POSIX | regex.DOTALL | regex.ASCII | regex.VERSION0


class BadRegex(ValueError):
    """The pattern is not a valid POSIX extended regular expression."""


def _lit(c: str) -> str:
    """One character (a byte) as a literal, outside or inside a set."""
    return c if c.isascii() and c.isalnum() else f"\\x{ord(c):02x}"


def _bracket(p: str, i: int) -> tuple[str, int]:
    """The bracket expression starting after ``[`` at ``i``: (translation, next index)."""
    out = ["["]
    if i < len(p) and p[i] == "^":
        out.append("^")
        i += 1
    first = True
    prev: str | None = None  # the last single character, for a range
    while True:
        if i >= len(p):
            raise BadRegex("unterminated bracket expression '['")
        c = p[i]
        if c == "]" and not first:
            break
        leading, first = first, False
        if c == "[" and i + 1 < len(p) and p[i + 1] in ":=.":
            kind = p[i + 1]
            end = p.find(kind + "]", i + 2)
            if end < 0:
                raise BadRegex(f"unterminated '[{kind}' in a bracket expression")
            name = p[i + 2 : end]
            i = end + 2
            if kind == ":":
                if name not in CLASSES:
                    raise BadRegex(f"unknown character class '[:{name}:]'")
                out.append(CLASSES[name])
                prev = None
                continue
            if len(name) != 1:
                raise BadRegex(f"unsupported collating element '[{kind}{name}{kind}]'")
            c = name
        else:
            i += 1
        if c == "-" and not leading and i < len(p) and p[i] != "]":
            if prev is None:
                raise BadRegex("'-' after a range or class in a bracket expression")
            hi = p[i]
            if hi == "[" and i + 1 < len(p) and p[i + 1] == ".":
                end = p.find(".]", i + 2)
                if end < 0 or end != i + 3:
                    raise BadRegex("bad range end in a bracket expression")
                hi, i = p[i + 2], end + 2
            else:
                i += 1
            if ord(hi) < ord(prev):
                raise BadRegex(f"invalid range '{prev}-{hi}' in a bracket expression")
            out.append("-" + _lit(hi))
            prev = None
            continue
        out.append(_lit(c))
        prev = c
    return "".join(out) + "]", i + 1


def translate(p: str) -> str:
    """An ERE (as Latin-1 text) as a pattern for the ``regex`` module's POSIX mode."""
    out: list[str] = []
    groups: list[int] = []  # where each open group starts in ``out``
    atom: int | None = None  # where the last atom starts (None: nothing to repeat)
    repeated = False  # the last atom already has a quantifier
    i = 0
    while i < len(p):
        c = p[i]
        i += 1
        if c in "*+?{":
            if atom is None:
                raise BadRegex(f"'{c}' has nothing to repeat")
            if c == "{":
                end = p.find("}", i)
                body = p[i:end] if end >= 0 else ""
                lo, sep, hi = body.partition(",")
                ok = lo.isdigit() and (hi.isdigit() or not hi) and all(x.isascii() for x in body)
                if not ok or (sep and hi and int(hi) < int(lo)):
                    raise BadRegex("invalid interval '{" + body + "'")
                c = "{" + body + "}"
                i = end + 1
            if repeated:
                out[atom:] = ["(?:" + "".join(out[atom:]) + ")"]
            out.append(c)
            repeated = True
            continue
        repeated = False
        if c == "\\":
            if i >= len(p):
                raise BadRegex("trailing backslash")
            if p[i] not in ESCAPABLE:
                raise BadRegex(
                    f"'\\{p[i]}' is not an escape of POSIX extended regular expressions"
                    " (only ^ $ \\ . * + ? ( ) [ { | can be escaped)"
                )
            atom = len(out)
            out.append(_lit(p[i]))
            i += 1
        elif c == "[":
            atom = len(out)
            text, i = _bracket(p, i)
            out.append(text)
        elif c == "(":
            groups.append(len(out))
            out.append("(")
            atom = None
        elif c == ")":
            if not groups:
                raise BadRegex("unmatched ')'")
            atom = groups.pop()
            out.append(")")
        elif c == "|":
            out.append("|")
            atom = None
        elif c == "^":
            out.append("^")
            atom = None
        elif c == "$":
            out.append(r"\Z")
            atom = None
        elif c == ".":
            atom = len(out)
            out.append(".")
        else:
            atom = len(out)
            out.append(_lit(c))
    if groups:
        raise BadRegex("unmatched '('")
    return "".join(out)


@functools.lru_cache(maxsize=256)
def compile_ere(pattern: str) -> regex.Pattern[str]:
    """The compiled form of an ERE given as text (raises :class:`BadRegex`)."""
    latin = utf8(pattern).decode("latin-1")
    try:
        return regex.compile(translate(latin), FLAGS)
    except regex.error as exc:
        raise BadRegex(str(exc)) from None


def _compile(ev: Evaluator, pattern: str, span: SourceSpan) -> regex.Pattern[str]:
    try:
        return compile_ere(pattern)
    except BadRegex as exc:
        raise ev.error(
            f"invalid regular expression '{pattern}': {exc}",
            span,
            hint="match and split take POSIX extended regular expressions, as in Nix",
        ) from None


def _timeout(ev: Evaluator, pattern: str, span: SourceSpan) -> Exception:
    return ev.error(
        f"the regular expression '{pattern}' ran for more than {TIMEOUT:g} seconds", span
    )


def _text(ev: Evaluator, s: str | None, span: SourceSpan, what: str) -> Thunk:
    if s is None:
        return Thunk.of(None)
    return Thunk.of(from_utf8(ev, s.encode("latin-1"), span, what))


def _groups(ev: Evaluator, m: regex.Match[str], span: SourceSpan, what: str) -> ListValue:
    return ListValue([_text(ev, g, span, what) for g in m.groups()])


@builtin("match", "regex", "str", group=G)
def _match(ev: Evaluator, span: SourceSpan, r: Thunk, x: Thunk) -> Value:
    """`null` if the POSIX extended regular expression *regex* does not match all of *str*,
    else the list of what its groups matched (`null` for a group that took no part):
    `match "a(b)?(c*)" "ac"` is `[ null "c" ]`."""
    pattern = ev.force_str(r, span)
    rx = _compile(ev, pattern, span)
    s = utf8(ev.force_str(x, span)).decode("latin-1")
    ev.tick(span, len(s) // WORK_PER_STEP)
    try:
        m = rx.fullmatch(s, timeout=TIMEOUT)
    except TimeoutError:
        raise _timeout(ev, pattern, span) from None
    return None if m is None else _groups(ev, m, span, "match")


def _matches(rx: regex.Pattern[str], s: str) -> Iterator[regex.Match[str]]:
    """Successive matches, as C++'s ``std::sregex_iterator`` finds them: after an
    empty match, a non-empty one at the same place, else a search one further on."""
    m = rx.search(s, 0, timeout=TIMEOUT)
    while m is not None:
        yield m
        end = m.end()
        if m.start() == end:
            if end == len(s):
                return
            longer = rx.match(s, end, timeout=TIMEOUT)
            if longer is not None and longer.end() > end:
                m = longer
                continue
            m = rx.search(s, end + 1, timeout=TIMEOUT)
        else:
            m = rx.search(s, end, timeout=TIMEOUT)


@builtin("split", "regex", "str", group=G)
def _split(ev: Evaluator, span: SourceSpan, r: Thunk, x: Thunk) -> Value:
    """*str* split at each match of the POSIX extended regular expression *regex*: the
    pieces between matches, and between them the lists of what the groups matched:
    `split "(a)|b" "xay"` is `[ "x" [ "a" ] "y" ]`."""
    pattern = ev.force_str(r, span)
    rx = _compile(ev, pattern, span)
    text = ev.force_str(x, span)
    s = utf8(text).decode("latin-1")
    out: list[Thunk] = []
    prev = 0
    try:
        for m in _matches(rx, s):
            ev.tick(span)
            out.append(_text(ev, s[prev : m.start()], span, "split"))
            out.append(Thunk.of(_groups(ev, m, span, "split")))
            prev = m.end()
            ev.check_list(len(out), span)
    except TimeoutError:
        raise _timeout(ev, pattern, span) from None
    if not out:
        return ListValue([Thunk.of(text)])
    out.append(_text(ev, s[prev:], span, "split"))
    return ListValue(out)
