"""The library surface: every CLI verb is a call here, usable without the CLI."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprobuild.errors import EvalError, RecipeError
from reprobuild.lang.evaluate import Evaluator
from reprobuild.lang.values import Value

RECURSION_LIMIT = 20_000


@dataclass(frozen=True)
class Evaluation:
    """An evaluated recipe: its value and the evaluator that can force more of it."""

    path: Path
    evaluator: Evaluator
    value: Value

    def to_json(self) -> Any:
        from reprobuild.lang.builtins import to_json

        with _deep_stack():
            return to_json(self.evaluator, self.evaluator.force_deep(self.value), None)


class _deep_stack:
    """Raise the recursion limit for deep recipes; turn overflow into an error."""

    def __enter__(self) -> None:
        self.old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(self.old, RECURSION_LIMIT))

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        sys.setrecursionlimit(self.old)
        if isinstance(exc, RecursionError):
            raise EvalError(
                "stack overflow: evaluation recursed too deeply (infinite recursion?)"
            ) from None
        return False


def evaluate(path: Path, *, strict: bool = False) -> Evaluation:
    """Parse and evaluate a recipe file; ``strict`` forces the whole result."""
    evaluator = Evaluator(path.parent)
    with _deep_stack():
        value = evaluator.eval_file(path, str(path))
        if strict:
            evaluator.force_deep(value)
    return Evaluation(path, evaluator, value)


__all__ = ["Evaluation", "RecipeError", "evaluate"]
