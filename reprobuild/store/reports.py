"""The values the store's queries and maintenance return (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reprobuild.store.records import BuildRecord, Output


@dataclass(frozen=True)
class BuildInfo:
    """One build commit: where it is, when it was made and what it recorded."""

    ref: str
    recipe: str
    number: int
    commit: str
    time: int
    record: BuildRecord


@dataclass(frozen=True)
class ListEntry:
    """A line of ``store ls``: a build or a step with the size of its outputs."""

    kind: str  # "build" or "step"
    ref: str
    name: str  # recipe name or step kind
    size: int
    outputs: tuple[Output, ...]


@dataclass(frozen=True)
class Problem:
    """One thing ``verify`` found wrong, naming the object or ref concerned."""

    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """``problems`` empty means the store is sound (the CLI exits 1 otherwise)."""

    problems: tuple[Problem, ...]
    content_objects: int
    content_bytes: int
    git_objects: int
    refs: int

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` removed."""

    removed_refs: tuple[str, ...]
    removed_content: int
    freed_bytes: int
    removed_git_objects: int
    kept_young: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    removed_chunks: int = 0
