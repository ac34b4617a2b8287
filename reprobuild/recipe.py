"""The recipe language's front stage for the commands: a recipe file evaluated
(``eval``), formatted (``fmt``), shown in its own syntax, and planned into its
step graph (``graph``). :mod:`reprobuild.api` re-exports these; the stages
behind them are :mod:`reprobuild.lang` and :mod:`reprobuild.plan`."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprobuild.canonical import canonical_json
from reprobuild.errors import EvalError
from reprobuild.lang.evaluate import Evaluator
from reprobuild.lang.values import Value

if TYPE_CHECKING:
    from reprobuild.plan import Plan

__all__ = [
    "Evaluation",
    "deep_stack",
    "evaluate",
    "format_file",
    "graph",
    "make_plan",
    "show_value",
]

RECURSION_LIMIT = 20_000


@dataclass(frozen=True)
class Evaluation:
    """An evaluated recipe: its value and the evaluator that can force more of it."""

    path: Path
    evaluator: Evaluator
    value: Value

    def to_json(self) -> Any:
        from reprobuild.lang.builtins import to_json

        with deep_stack():
            return to_json(self.evaluator, self.evaluator.force_deep(self.value), None)


class deep_stack:
    """Raise the recursion limit for deep recipes; turn overflow into an error."""

    def __enter__(self) -> None:
        self.old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(self.old, RECURSION_LIMIT))

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        sys.setrecursionlimit(self.old)
        if isinstance(exc, RecursionError):
            raise EvalError(
                "stack overflow: evaluation recursed too deeply (infinite recursion?)"
            ) from None


def evaluate(path: Path, *, strict: bool = False) -> Evaluation:
    """Parse and evaluate a recipe file; ``strict`` forces the whole result."""
    evaluator = Evaluator(path.parent)
    with deep_stack():
        value = evaluator.eval_file(path, str(path))
        if strict:
            evaluator.force_deep(value)
    return Evaluation(path, evaluator, value)


def show_value(data: Any) -> str:
    """Print forced JSON data in the recipe language's own syntax."""
    from reprobuild.lang.limits import recursion_room

    with recursion_room(20_000):  # to_json bounds the nesting (max_nesting)
        return _show_value(data)


def _show_value(data: Any) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, int | float):
        return repr(data)
    if isinstance(data, str):
        return json.dumps(data, ensure_ascii=False).replace("${", "\\${")
    if isinstance(data, list):
        return "[ " + "".join(_show_value(x) + " " for x in data) + "]"
    items = "".join(f"{_show_name(k)} = {_show_value(data[k])}; " for k in sorted(data))
    return "{ " + items + "}"


def _show_name(name: str) -> str:
    from reprobuild.lang.lexer import KEYWORDS, RE_ID

    if RE_ID.fullmatch(name) and name not in KEYWORDS:
        return name
    return json.dumps(name, ensure_ascii=False)


def format_file(path: Path, *, write: bool) -> bool:
    """Format a recipe in place; returns whether its text changed."""
    from reprobuild.lang.fmt import format_source
    from reprobuild.lang.parse import parse_file

    with deep_stack():
        parsed = parse_file(path, str(path))
        new = format_source(parsed)
    if new == parsed.text:
        return False
    if write:
        tmp = path.with_name(f".{path.name}.fmt-tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
    return True


def make_plan(path: Path) -> Plan:
    """Evaluate a recipe and build its step graph."""
    from reprobuild.plan import plan

    result = evaluate(path)
    with deep_stack():
        return plan(result.evaluator, result.value, str(path))


def graph(path: Path, fmt: str = "text") -> str:
    """The step graph as text, Graphviz dot, or JSON."""
    from reprobuild.plan import render_dot, render_json, render_text

    p = make_plan(path)
    if fmt == "dot":
        return render_dot(p)
    if fmt == "json":
        return canonical_json(render_json(p), document=True).removesuffix("\n")
    return render_text(p)
