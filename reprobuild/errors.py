"""One exception hierarchy for every failure a user can act on.

The CLI catches :class:`ReprobuildError` and prints its :meth:`render` output;
anything else is a bug and is allowed to show a traceback (with ``--debug``
always). Each error carries the process exit code it maps to:

* 1 — a check failed or outputs are not reproducible;
* 2 — bad input, bad usage, or the outside world (network, signatures) failed.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class SourceSpan:
    """A place in a recipe file; lines and columns count from 1."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class ReprobuildError(Exception):
    """Base class: an expected failure with a message a user can act on.

    An error found after evaluation (an unknown package, a future date) can
    still point into the recipe: the stage that finds it sets ``where`` (step
    key, argument name, and the text to point at, if any) and the caller who
    holds the recipe's source calls :meth:`locate`.
    """

    exit_code: int = EXIT_BAD_INPUT
    span: SourceSpan | None = None
    source_line: str | None = None
    where: tuple[str, str, str | None] | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def locate(self, span: SourceSpan, source_line: str | None) -> None:
        """Point this error at a place in a recipe (printed with a caret)."""
        self.span = span
        self.source_line = source_line

    def render(self) -> str:
        """The text the CLI prints (without a trailing newline)."""
        if self.span is None:
            text = f"error: {self.message}"
        else:
            text = f"{self.span}: error: {self.message}"
            if self.source_line is not None:
                src, caret = _window(
                    self.source_line.rstrip("\n").expandtabs(1), self.span.column - 1
                )
                text += f"\n    {src}\n    " + " " * caret + "^"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class UsageError(ReprobuildError):
    """The command line or a configuration file was wrong."""


class CheckFailed(ReprobuildError):
    """A check ran and found a difference or a failure (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


class RecipeError(ReprobuildError):
    """An error located in recipe source: printed with a caret under the column."""

    def __init__(
        self,
        message: str,
        span: SourceSpan | None = None,
        *,
        source_line: str | None = None,
        trace: tuple[str, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.span = span
        self.source_line = source_line
        self.trace = trace

    def with_trace(self, frame: str) -> RecipeError:
        """Append a ``while evaluating ...`` frame (outermost last)."""
        self.trace = (*self.trace, frame)
        return self

    def render(self) -> str:
        lines: list[str] = []
        prefix = f"{self.span}: " if self.span else ""
        lines.append(f"{prefix}error: {self.message}")
        if self.span and self.source_line is not None:
            src, caret = _window(self.source_line.rstrip("\n").expandtabs(1), self.span.column - 1)
            lines.append(f"    {src}")
            lines.append("    " + " " * caret + "^")
        lines.extend(self.trace)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


SOURCE_WIDTH = 200  # columns of a source line shown under an error


def _window(line: str, column: int) -> tuple[str, int]:
    """At most SOURCE_WIDTH columns of ``line`` around ``column`` (a generated
    one-line recipe must not flood the terminal), and the caret's offset."""
    if len(line) <= SOURCE_WIDTH:
        return line, column
    start = max(0, min(column - SOURCE_WIDTH // 2, len(line) - SOURCE_WIDTH))
    shown = line[start : start + SOURCE_WIDTH]
    caret = column - start
    if start > 0:
        shown = "…" + shown[1:]  # the caret is at least half a window in
    if start + SOURCE_WIDTH < len(line):
        shown = shown[:-1] + "…"
    return shown, caret


class ParseError(RecipeError):
    """The recipe text is not valid syntax."""


class EvalError(RecipeError):
    """Evaluating the recipe failed (type error, missing attribute, throw, ...)."""


class InfiniteRecursion(EvalError):
    """A value depends on itself."""


class EvalLimitExceeded(EvalError):
    """Evaluation hit a resource limit (depth, string or list size, steps)."""


class ImportEscapes(EvalError):
    """An ``import`` path leaves the directory tree of the top-level recipe."""


class PlanError(ReprobuildError):
    """The step graph is malformed (for example it has a cycle)."""


class ArchiveError(ReprobuildError):
    """An archive definition, index or package could not be used."""


class SignatureError(ArchiveError):
    """A signed index is unsigned, badly signed, or signed by an unknown key."""


class IntegrityError(ReprobuildError):
    """Content does not match the size or sha256 that vouches for it."""


class FetchError(ReprobuildError):
    """Downloading failed after bounded retries."""


class ResolveError(ReprobuildError):
    """A package request cannot be satisfied from the snapshot."""


class LockfileError(ReprobuildError):
    """A lockfile is missing, malformed or stale."""


class StoreError(ReprobuildError):
    """The content store is unusable or damaged."""


class VersionError(ArchiveError):
    """A package version string is not valid for its archive format."""


class DiskFull(ReprobuildError):
    """A write failed for lack of space (ENOSPC/EDQUOT); the message names where.

    Nothing partial is kept: whoever wrote removes its temp file first.
    """
