"""``match`` and ``split``: POSIX extended regular expressions, as Nix has them.

Nix compiles a pattern with C++'s ``std::regex(re, std::regex::extended)``
(libstdc++) and runs it over the bytes of a string. Python's ``re`` differs
from that in ways that change results (it is leftmost-first, reads ``\\d``
as a digit and ``*?`` as lazy, lets ``$`` match before a final newline, and
has no ``[[:alpha:]]``), and so does any POSIX matcher: libstdc++'s own
search has rules of its own. So the pattern is matched by
:mod:`reprobuild.lang.ere`, which parses ERE as libstdc++ does and searches as
it does, over the string's UTF-8 bytes (each byte one character, as Latin-1).

Deviations: ``.`` matches one byte, so it can cut a multi-byte character in
two; a captured piece that is not valid UTF-8 is an error here (Nix returns
the bytes). Equivalence classes ``[=a=]`` and collating symbols ``[.a.]`` are
the one character they name. A search counts as evaluation steps (a
pathological pattern ends at the step limit), and a string so long that the
search recurses past the depth limit is an error (libstdc++ overflows its
stack there).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from reprobuild.errors import SourceSpan
from reprobuild.lang.builtins_strings import from_utf8, utf8
from reprobuild.lang.ere import BadRegex, Matcher
from reprobuild.lang.primops import builtin
from reprobuild.lang.values import ListValue, Thunk, Value

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

G = "strings"


@functools.lru_cache(maxsize=256)
def compile_ere(pattern: str) -> Matcher:
    """The compiled form of an ERE given as text (raises :class:`BadRegex`)."""
    return Matcher(utf8(pattern).decode("latin-1"))


def _compile(ev: Evaluator, pattern: str, span: SourceSpan) -> Matcher:
    try:
        rx = compile_ere(pattern)
    except BadRegex as exc:
        raise ev.error(
            f"invalid regular expression '{pattern}': {exc}",
            span,
            hint="match and split take POSIX extended regular expressions, as in Nix",
        ) from None
    rx.tick = lambda: ev.tick(span)
    return rx


def _too_long(ev: Evaluator, pattern: str, span: SourceSpan) -> Exception:
    # The search recurses once per character matched (as libstdc++ does, which
    # overflows its stack too); Python's recursion limit ends it here.
    return ev.limit_error(
        f"the regular expression '{pattern}' recursed too deeply on a string this long",
        "max_depth",
        span,
    )


def _text(ev: Evaluator, s: str | None, span: SourceSpan, what: str) -> Thunk:
    if s is None:
        return Thunk.of(None)
    return Thunk.of(from_utf8(ev, s.encode("latin-1"), span, what))


def _groups(ev: Evaluator, groups: list[str | None], span: SourceSpan, what: str) -> ListValue:
    return ListValue([_text(ev, g, span, what) for g in groups])


@builtin("match", "regex", "str", group=G)
def _match(ev: Evaluator, span: SourceSpan, r: Thunk, x: Thunk) -> Value:
    """`null` if the POSIX extended regular expression *regex* does not match all of *str*,
    else the list of what its groups matched (`null` for a group that took no part):
    `match "a(b)?(c*)" "ac"` is `[ null "c" ]`."""
    pattern = ev.force_str(r, span)
    rx = _compile(ev, pattern, span)
    s = utf8(ev.force_str(x, span)).decode("latin-1")
    try:
        found = rx.run(s, 0, exact=True)
    except RecursionError:
        raise _too_long(ev, pattern, span) from None
    return None if found is None else _groups(ev, found[1], span, "match")


@builtin("split", "regex", "str", group=G)
def _split(ev: Evaluator, span: SourceSpan, r: Thunk, x: Thunk) -> Value:
    """*str* split at each match of the POSIX extended regular expression *regex*: the
    pieces between matches, and between them the lists of what the groups matched:
    `split "(a)|b" "xay"` is `[ "x" [ "a" ] "y" ]`."""
    pattern = ev.force_str(r, span)
    rx = _compile(ev, pattern, span)
    text = ev.force_str(x, span)
    s = utf8(text).decode("latin-1")
    try:
        found = rx.matches(s)
    except RecursionError:
        raise _too_long(ev, pattern, span) from None
    out: list[Thunk] = []
    prev = 0
    for start, end, groups in found:
        out.append(_text(ev, s[prev:start], span, "split"))
        out.append(Thunk.of(_groups(ev, groups, span, "split")))
        prev = end
        ev.check_list(len(out), span)
    if not out:
        return ListValue([Thunk.of(text)])
    out.append(_text(ev, s[prev:], span, "split"))
    return ListValue(out)
