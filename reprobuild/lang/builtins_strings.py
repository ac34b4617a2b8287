"""Builtins on strings.

Nix strings are bytes and its string builtins count and cut bytes:
``stringLength "é"`` is 2. Here strings are Python text, so these builtins
work on the UTF-8 encoding and decode the result; a result that would cut a
character in two (which Nix would return as invalid UTF-8) is an error.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from reprobuild.errors import SourceSpan
from reprobuild.lang.primops import builtin
from reprobuild.lang.values import AttrsValue, ListValue, Thunk, Value

if TYPE_CHECKING:
    from reprobuild.lang.evaluate import Evaluator

G = "strings"
HASHES = ("md5", "sha1", "sha256", "sha512")


def utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def from_utf8(ev: Evaluator, b: bytes, span: SourceSpan, what: str) -> str:
    """Bytes cut or joined by a builtin, back to text; an error where Nix would
    produce invalid UTF-8."""
    try:
        return ev.check_str(b.decode("utf-8"), span)
    except UnicodeDecodeError:
        raise ev.error(
            f"the result of {what} is not valid UTF-8 (it would cut a character in two)",
            span,
            hint="Nix counts string positions in bytes, and so does reprobuild",
        ) from None


@builtin("concatStringsSep", "separator", "list", group=G)
def _concat_sep(ev: Evaluator, span: SourceSpan, sep: Thunk, xs: Thunk) -> Value:
    """The strings of *list* joined with *separator* between them."""
    s = ev.force_str(sep, span)
    parts = []
    size = 0
    for x in ev.force_list(xs, span).items:
        parts.append(ev.coerce_to_string(ev.force(x), span, more=False))
        size += len(parts[-1]) + len(s)
        ev.check_str_len(size, span)
        ev.tick(span)
    return s.join(parts)


@builtin("toString", "e", bare=True, group=G)
def _to_string(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """*e* as a string: numbers, Booleans (`"1"` or `""`), `null` (`""`), paths, lists
    (elements joined with spaces), and sets with `__toString` or `outPath`."""
    return ev.coerce_to_string(ev.force(x), span, more=True)


@builtin("stringLength", "e", group=G)
def _string_length(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """The length of the string *e* in bytes of UTF-8, as in Nix (`stringLength "é"` is 2)."""
    return len(utf8(ev.coerce_to_string(ev.force(x), span, more=False)))


@builtin("substring", "start", "len", "s", group=G)
def _substring(ev: Evaluator, span: SourceSpan, a: Thunk, n: Thunk, x: Thunk) -> Value:
    """The part of *s* from byte *start* (from 0), at most *len* bytes long (a negative
    *len* means to the end); `""` if *start* is past the end."""
    start = ev.force_int(a, span)
    length = ev.force_int(n, span)
    s = utf8(ev.coerce_to_string(ev.force(x), span, more=False))
    if start < 0:
        raise ev.error("negative start position in 'substring'", span)
    if start >= len(s):
        return ""
    end = len(s) if length < 0 else start + length
    return from_utf8(ev, s[start:end], span, "substring")


@builtin("replaceStrings", "from", "to", "s", group=G)
def _replace_strings(ev: Evaluator, span: SourceSpan, f: Thunk, t: Thunk, x: Thunk) -> Value:
    """*s* with each occurrence of a string of *from* replaced by the string at the same
    position in *to*; at each position the first match in *from* wins, and the
    replacement is not searched again. An empty string in *from* matches before
    every character and at the end."""
    olds = ev.force_list(f, span).items
    news = ev.force_list(t, span).items
    if len(olds) != len(news):
        raise ev.error(
            "'from' and 'to' arguments to 'replaceStrings' have different lengths", span
        )
    olds_b = [utf8(ev.force_str(o, span)) for o in olds]
    repl = [utf8(ev.force_str(r, span)) for r in news]
    text = ev.force_str(x, span)
    if not olds_b:
        return text
    s = utf8(text)
    if all(olds_b):
        # At each position the first pattern that matches wins: exactly what an
        # alternation of the patterns, in order, does.
        index = {o: i for i, o in reversed(list(enumerate(olds_b)))}
        pattern = re.compile(b"|".join(re.escape(o) for o in olds_b))
        size = [len(s)]

        def sub(m: re.Match[bytes]) -> bytes:
            r = repl[index[m.group()]]
            size[0] += len(r) - len(m.group())
            ev.check_str_len(size[0], span)
            return r

        ev.tick(span, len(s) // 1024)
        return from_utf8(ev, pattern.sub(sub, s), span, "replaceStrings")
    out = bytearray()
    p = 0
    while p <= len(s):
        ev.tick(span)
        for i, old in enumerate(olds_b):
            if s.startswith(old, p):
                out += repl[i]
                if old:
                    p += len(old)
                else:
                    out += s[p : p + 1]
                    p += 1
                break
        else:
            out += s[p : p + 1]
            p += 1
        ev.check_str_len(len(out), span)
    return from_utf8(ev, bytes(out), span, "replaceStrings")


@builtin("hashString", "type", "s", group=G)
def _hash_string(ev: Evaluator, span: SourceSpan, ty: Thunk, x: Thunk) -> Value:
    """The hash of the UTF-8 bytes of *s* in lowercase hexadecimal; *type* is `"md5"`,
    `"sha1"`, `"sha256"` or `"sha512"`."""
    kind = ev.force_str(ty, span)
    if kind not in HASHES:
        raise ev.error(
            f"unknown hash algorithm '{kind}'", span, hint="use one of: " + ", ".join(HASHES)
        )
    return hashlib.new(kind, utf8(ev.force_str(x, span))).hexdigest()


# -- versions, as Nix compares package versions (libstore/names.cc) -------------


def _components(version: str) -> list[str]:
    """Runs of digits, or of other characters, between dots and dashes."""
    out: list[str] = []
    i, n = 0, len(version)
    while True:
        while i < n and version[i] in ".-":
            i += 1
        if i == n:
            return out
        j = i
        if version[i].isascii() and version[i].isdigit():
            while j < n and version[j].isascii() and version[j].isdigit():
                j += 1
        else:
            while j < n and not (version[j].isascii() and version[j].isdigit()) and (
                version[j] not in ".-"
            ):
                j += 1
        out.append(version[i:j])
        i = j


def _as_int(c: str) -> int | None:
    return int(c) if c.isdigit() and c.isascii() and int(c) < 2**31 else None


def _component_lt(a: str, b: str) -> bool:
    n1, n2 = _as_int(a), _as_int(b)
    if n1 is not None and n2 is not None:
        return n1 < n2
    if a == "" and n2 is not None:
        return True
    if a == "pre" and b != "pre":
        return True
    if b == "pre":
        return False
    if n2 is not None:
        return True
    if n1 is not None:
        return False
    return utf8(a) < utf8(b)


@builtin("compareVersions", "s1", "s2", group=G)
def _compare_versions(ev: Evaluator, span: SourceSpan, a: Thunk, b: Thunk) -> Value:
    """Compare two versions by Nix's rules: -1, 0 or 1 as *s1* is older than, the same
    as or newer than *s2*; `compareVersions "1.10" "1.9"` is 1, and `pre` sorts first."""
    c1, c2 = _components(ev.force_str(a, span)), _components(ev.force_str(b, span))
    for i in range(max(len(c1), len(c2))):
        x = c1[i] if i < len(c1) else ""
        y = c2[i] if i < len(c2) else ""
        if _component_lt(x, y):
            return -1
        if _component_lt(y, x):
            return 1
    return 0


@builtin("splitVersion", "s", group=G)
def _split_version(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """The components of the version *s*: `splitVersion "1.2.3pre"` is
    `[ "1" "2" "3" "pre" ]`."""
    return ListValue([Thunk.of(c) for c in _components(ev.force_str(x, span))])


@builtin("parseDrvName", "s", group=G)
def _parse_drv_name(ev: Evaluator, span: SourceSpan, x: Thunk) -> Value:
    """`{ name; version; }` from a package name such as `"hello-2.12"`: the version
    starts after the first dash that is not followed by a letter."""
    s = ev.force_str(x, span)
    for i, ch in enumerate(s[:-1]):
        nxt = s[i + 1]
        if ch == "-" and not (nxt.isascii() and nxt.isalpha()):
            return AttrsValue({"name": Thunk.of(s[:i]), "version": Thunk.of(s[i + 1 :])})
    return AttrsValue({"name": Thunk.of(s), "version": Thunk.of("")})
