"""POSIX extended regular expressions, matched as Nix's libstdc++ matches them.

Nix runs ``builtins.match`` and ``builtins.split`` with C++'s
``std::regex(re, std::regex::extended)`` over the bytes of a string. libstdc++
matches POSIX patterns with a depth-first search that is neither Perl's
leftmost-first nor POSIX's leftmost-longest:

- an alternation tries both sides and keeps the longer match (the left one
  when they are as long);
- a greedy repetition tries one more iteration first and takes the exit only
  if no match at all was found that way (``a*(ab|a)?`` on ``"ab"`` matches
  ``"a"``), and an iteration that matched nothing is repeated at most twice;
- the overall match is the longest one found, its groups those of the first
  match of that length; a group keeps what it matched in an earlier iteration.

This module parses a pattern (a ``str`` whose characters are bytes, 0-255)
into a tree and matches it with the same search, written in continuation-
passing style: each node gets the position and what to do after it. Each
step is counted (``tick``), so a pathological pattern ends at the step limit
of evaluation rather than running for ever.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

K = Callable[[int], None]  # a continuation: what to match after this point
Node = Callable[[int, K], None]

# libstdc++'s class names in the C locale (regex_traits::lookup_classname).
_CLASSES = {
    "alnum": string.ascii_letters + string.digits,
    "alpha": string.ascii_letters,
    "blank": " \t",
    "cntrl": "".join(map(chr, range(32))) + "\x7f",
    "digit": string.digits,
    "graph": "".join(chr(c) for c in range(33, 127)),
    "lower": string.ascii_lowercase,
    "print": "".join(chr(c) for c in range(32, 127)),
    "punct": string.punctuation,
    "space": " \t\n\r\x0b\x0c",
    "upper": string.ascii_uppercase,
    "xdigit": string.hexdigits,
    "w": string.ascii_letters + string.digits + "_",
    "d": string.digits,
    "s": " \t\n\r\x0b\x0c",
}
# What a backslash may escape outside brackets (anything else is an error).
ESCAPABLE = frozenset("^$\\.*+?()[{|")
ALL = frozenset(chr(c) for c in range(1, 256))  # '.' matches any byte but NUL


class BadRegex(ValueError):
    """The pattern is not a valid POSIX extended regular expression."""


@dataclass(frozen=True)
class Tree:
    """A parsed pattern: ``kind`` and its parts (see :class:`_Parser`)."""

    kind: str  # set bol eol group cat alt star plus opt rep
    parts: tuple[object, ...] = ()


class _Parser:
    def __init__(self, p: str) -> None:
        self.p = p
        self.i = 0
        self.groups = 0

    def parse(self) -> Tree:
        t = self.alternation()
        if self.i < len(self.p):
            raise BadRegex("unmatched ')'")
        return t

    def alternation(self) -> Tree:
        t = self.sequence()
        while self.i < len(self.p) and self.p[self.i] == "|":
            self.i += 1
            t = Tree("alt", (t, self.sequence()))  # left-associative, as libstdc++
        return t

    def sequence(self) -> Tree:
        items: list[Tree] = []
        while self.i < len(self.p) and self.p[self.i] not in "|)":
            c = self.p[self.i]
            self.i += 1
            if c in "*+?{":
                if not items or items[-1].kind in ("bol", "eol"):
                    raise BadRegex(f"'{c}' has nothing to repeat")
                items[-1] = self.quantified(items[-1], c)
                continue
            items.append(self.atom(c))
        return Tree("cat", tuple(items))

    def quantified(self, t: Tree, c: str) -> Tree:
        if c == "*":
            return Tree("star", (t,))
        if c == "+":
            return Tree("plus", (t,))
        if c == "?":
            return Tree("opt", (t,))
        end = self.p.find("}", self.i)
        body = self.p[self.i : end] if end >= 0 else ""
        lo, comma, hi = body.partition(",")
        ok = lo.isdigit() and (hi.isdigit() or not hi) and body.isascii()
        if end < 0 or not ok or (comma and hi and int(hi) < int(lo)):
            raise BadRegex("invalid interval '{" + body + "'")
        self.i = end + 1
        return Tree("rep", (t, int(lo), None if comma and not hi else int(hi or lo)))

    def atom(self, c: str) -> Tree:
        if c == "\\":
            if self.i >= len(self.p):
                raise BadRegex("trailing backslash")
            e = self.p[self.i]
            if e not in ESCAPABLE:
                raise BadRegex(
                    f"'\\{e}' is not an escape of POSIX extended regular expressions"
                    " (only ^ $ \\ . * + ? ( ) [ { | can be escaped)"
                )
            self.i += 1
            return Tree("set", (frozenset(e),))
        if c == "(":
            self.groups += 1
            n = self.groups
            inner = self.alternation()
            if self.i >= len(self.p) or self.p[self.i] != ")":
                raise BadRegex("unmatched '('")
            self.i += 1
            return Tree("group", (n, inner))
        if c == "[":
            return Tree("set", (self.bracket(),))
        if c == ".":
            return Tree("set", (ALL,))
        if c == "^":
            return Tree("bol")
        if c == "$":
            return Tree("eol")
        return Tree("set", (frozenset(c),))

    def bracket(self) -> frozenset[str]:
        p = self.p
        negate = self.i < len(p) and p[self.i] == "^"
        if negate:
            self.i += 1
        chars: set[str] = set()
        first = True
        prev: str | None = None  # the last single character, for a range
        while True:
            if self.i >= len(p):
                raise BadRegex("unterminated bracket expression '['")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            leading, first = first, False
            if c == "[" and self.i + 1 < len(p) and p[self.i + 1] in ":=.":
                kind = p[self.i + 1]
                end = p.find(kind + "]", self.i + 2)
                if end < 0:
                    raise BadRegex(f"unterminated '[{kind}' in a bracket expression")
                name = p[self.i + 2 : end]
                self.i = end + 2
                if kind == ":":
                    if name not in _CLASSES:
                        raise BadRegex(f"unknown character class '[:{name}:]'")
                    chars.update(_CLASSES[name])
                    prev = None
                    continue
                if len(name) != 1:
                    raise BadRegex(f"unsupported collating element '[{kind}{name}{kind}]'")
                c = name
            else:
                self.i += 1
            if c == "-" and not leading and self.i < len(p) and p[self.i] != "]":
                if prev is None:
                    raise BadRegex("'-' after a range or class in a bracket expression")
                hi = p[self.i]
                self.i += 1
                if hi == "[" and p.startswith(".", self.i) and p.startswith(".]", self.i + 2):
                    hi, self.i = p[self.i + 1], self.i + 4
                if ord(hi) < ord(prev):
                    raise BadRegex(f"invalid range '{prev}-{hi}' in a bracket expression")
                chars.update(chr(x) for x in range(ord(prev), ord(hi) + 1))
                prev = None
                continue
            chars.add(c)
            prev = c
        return frozenset(ALL - chars) if negate else frozenset(chars)


def parse(pattern: str) -> tuple[Tree, int]:
    """The tree of an ERE (its characters are bytes) and its number of groups."""
    parser = _Parser(pattern)
    return parser.parse(), parser.groups


class Matcher:
    """One compiled pattern; :meth:`run` is libstdc++'s ``_M_main`` in DFS mode."""

    def __init__(self, pattern: str) -> None:
        tree, self.groups = parse(pattern)
        self.tick: Callable[[], None] = lambda: None
        # The state of one run (see :meth:`run`).
        self.s = ""
        self.start = self.end = 0
        self.has_sol = False  # libstdc++'s _M_has_sol: a match was found on this path
        self.best = -1
        self.best_caps: list[tuple[int, int] | None] = []
        self.caps: list[tuple[int, int] | None] = []
        self.rep_counts: dict[object, tuple[int, int]] = {}
        self.root = self._compile(tree)

    def _compile(self, t: Tree) -> Node:
        k = t.kind
        if k == "set":
            chars = t.parts[0]
            assert isinstance(chars, frozenset)

            def match_set(pos: int, then: K) -> None:
                self.tick()
                if pos < self.end and self.s[pos] in chars:
                    then(pos + 1)

            return match_set
        if k == "bol":
            return lambda pos, then: then(pos) if pos == 0 and self.start == 0 else None
        if k == "eol":
            return lambda pos, then: then(pos) if pos == self.end else None
        if k == "cat":
            nodes = [self._compile(x) for x in t.parts if isinstance(x, Tree)]
            return self._sequence(nodes)
        if k == "group":
            n, inner = t.parts
            assert isinstance(n, int) and isinstance(inner, Tree)
            return self._group(n, self._compile(inner))
        if k == "alt":
            left, right = (self._compile(x) for x in t.parts if isinstance(x, Tree))
            return self._alternative(left, right)
        body_tree = t.parts[0]
        assert isinstance(body_tree, Tree)
        if k == "star":
            return self._star(body_tree)
        if k == "plus":
            first = self._compile(body_tree)
            star = self._star(body_tree)
            return lambda pos, then: first(pos, lambda p: star(p, then))
        if k == "opt":
            return self._optional(self._compile(body_tree))
        lo, hi = t.parts[1], t.parts[2]
        assert isinstance(lo, int)
        nodes = [self._compile(body_tree) for _ in range(lo)]
        if hi is None:
            nodes.append(self._star(body_tree))
        else:
            assert isinstance(hi, int)
            # ``{m,n}``: m copies, then n - m nested optional copies sharing one end.
            tail: Node | None = None
            for _ in range(hi - lo):
                tail = self._optional(self._compile(body_tree), tail)
            if tail is not None:
                nodes.append(tail)
        return self._sequence(nodes)

    @staticmethod
    def _sequence(nodes: list[Node]) -> Node:
        def run(pos: int, then: K, i: int = 0) -> None:
            if i == len(nodes):
                then(pos)
            else:
                nodes[i](pos, lambda p: run(p, then, i + 1))

        return run

    def _group(self, n: int, inner: Node) -> Node:
        def run(pos: int, then: K) -> None:
            caps = self.caps
            saved = caps[n]

            def close(p: int) -> None:
                opened = caps[n]
                caps[n] = (pos, p)
                then(p)
                caps[n] = opened

            caps[n] = (pos, -1) if saved is None else (pos, saved[1])
            inner(pos, close)
            caps[n] = saved

        return run

    def _alternative(self, left: Node, right: Node) -> Node:
        def run(pos: int, then: K) -> None:
            self.tick()
            left(pos, then)
            found = self.has_sol
            self.has_sol = False
            right(pos, then)
            self.has_sol = self.has_sol or found

        return run

    def _repeat(self, body: Node, after: Callable[[int, K], None] | None) -> Node:
        """libstdc++'s greedy repeat state: one more iteration first (an empty one at
        most twice in a row at one place), the exit only if that found no match at
        all. ``after`` is what follows one iteration; None loops back (``*``)."""
        key = object()

        def run(pos: int, then: K) -> None:
            self.tick()
            counts = self.rep_counts
            at, count = counts.get(key, (-1, 0))
            if after is None:
                again: K = lambda p: run(p, then)  # noqa: E731
            else:
                again = lambda p: after(p, then)  # noqa: E731
            if count == 0 or at != pos:
                counts[key] = (pos, 1)
                body(pos, again)
                counts[key] = (at, count)
            elif count < 2:
                counts[key] = (at, count + 1)
                body(pos, again)
                counts[key] = (at, count)
            if not self.has_sol:
                then(pos)

        return run

    def _star(self, body_tree: Tree) -> Node:
        return self._repeat(self._compile(body_tree), None)

    def _optional(self, body: Node, rest: Node | None = None) -> Node:
        """``x?``, and each optional copy of ``x{m,n}``: x and then ``rest`` (the next
        optional copy), or skip both."""
        return self._repeat(body, rest if rest is not None else (lambda p, k: k(p)))

    # -- running ---------------------------------------------------------------

    def run(
        self, s: str, start: int, *, exact: bool = False, not_null: bool = False
    ) -> tuple[int, list[str | None]] | None:
        """The match starting exactly at ``start``: (its end, its groups) or None."""
        self.s, self.start, self.end = s, start, len(s)
        self.has_sol = False
        self.best = -1
        self.best_caps = []
        self.caps = [None] * (self.groups + 1)
        self.rep_counts = {}

        def accept(pos: int) -> None:
            ok = pos == self.end if exact else True
            if ok and not (not_null and pos == start):
                self.has_sol = True
                if pos > self.best:
                    self.best = pos
                    self.best_caps = list(self.caps)

        self.root(start, accept)
        if self.best < 0:
            return None
        groups: list[str | None] = []
        for c in self.best_caps[1:]:
            groups.append(None if c is None or c[1] < 0 else s[c[0] : c[1]])
        return self.best, groups

    def search(
        self, s: str, begin: int, *, not_null: bool = False, continuous: bool = False
    ) -> tuple[int, int, list[str | None]] | None:
        """``std::regex_search`` from ``begin``: (start, end, groups) of the first
        place a match starts, or None."""
        for start in range(begin, len(s) + 1):
            found = self.run(s, start, not_null=not_null)
            if found is not None:
                return start, found[0], found[1]
            if continuous:
                break
        return None

    def matches(self, s: str) -> list[tuple[int, int, list[str | None]]]:
        """Every match, as ``std::sregex_iterator`` finds them: after an empty
        match, a non-empty one at the same place, else a search one further on."""
        out = []
        m = self.search(s, 0)
        while m is not None:
            out.append(m)
            start, end, _ = m
            if start == end:
                if end == len(s):
                    break
                m = self.search(s, end, not_null=True, continuous=True)
                if m is None:
                    m = self.search(s, end + 1)
            else:
                m = self.search(s, end)
        return out
