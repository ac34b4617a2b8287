"""Resource limits of recipe evaluation.

A recipe is untrusted input: without bounds, ``let f = n: 1 + f (n - 1); in
f 1000000`` would overflow Python's stack, ``s + s`` repeated 40 times would
exhaust memory, and an exponential recursion would never end. Each limit
turns such a recipe into a :class:`~reprobuild.errors.EvalLimitExceeded`
(a :class:`~reprobuild.errors.ParseError` for syntax nesting) naming the limit
and the environment variable that raises it. Steps are counted, not seconds,
so whether a recipe fits is the same on every machine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields

from reprobuild.errors import UsageError

ENV_PREFIX = "REPROBUILD_"


# Past these, the stacks the limits need would not fit (depth: a thread
# stack of 4 KiB per level; nesting: printing and JSON-encoding a value
# recurse at Python's default recursion limit of 1000).
CEILINGS = {"max_depth": 200_000, "max_nesting": 900}


@dataclass(frozen=True)
class EvalLimits:
    """Upper bounds for one evaluation; defaults fit any sensible recipe."""

    max_depth: int = 30_000  # nested evaluations in progress (Nix: 10000 calls)
    max_nesting: int = 400  # nesting of one file's syntax, and of an output value
    max_string: int = 1 << 24  # characters in one string (16 Mi)
    max_list: int = 1 << 22  # elements in one list (4 Mi)
    max_steps: int = 10_000_000  # evaluation steps in total (about 10 s)

    def hint(self, name: str) -> str:
        """How to raise the limit ``name`` (for error hints)."""
        return limit_hint(name, getattr(self, name))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EvalLimits:
        """The defaults, overridden by ``REPROBUILD_MAX_DEPTH`` and friends."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for f in fields(cls):
            var = ENV_PREFIX + f.name.upper()
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                n = int(raw.replace("_", ""))
            except ValueError:
                n = 0
            top = CEILINGS.get(f.name, 1 << 40)
            if n <= 0 or n > top:
                raise UsageError(
                    f"{var}={raw!r} is not an integer from 1 to {top}",
                    hint=f"unset {var} to use the default ({getattr(cls(), f.name)})",
                )
            values[f.name] = n
        return cls(**values)


def limit_hint(name: str, value: int) -> str:
    var = ENV_PREFIX + name.upper()
    return f"the limit is {var}={value}; set it higher in the environment if the recipe needs more"


@contextmanager
def recursion_room(frames: int) -> Iterator[None]:
    """Let Python recurse ``frames`` deeper than it is now (for the parser's
    tree builder and the formatter, which recurse once per nesting level)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _depth() + frames))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _depth() -> int:
    n = 0
    f = sys._getframe()
    while f is not None:
        n += 1
        f = f.f_back  # type: ignore[assignment]
    return n
