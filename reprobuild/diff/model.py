"""The one data structure every comparator builds and every presenter reads.

As in diffoscope, comparing two artefacts yields a tree of
:class:`Difference` nodes, or ``None`` when they are identical. Comparators
never print and presenters never compare, so text, JSON and HTML always say
the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Literal

__all__ = ["CONTAINER_KINDS", "Difference", "Origin"]

Origin = Literal["reprobuild", "diffoscope"]

#: Kinds whose node only groups its children (an archive, a layer, a tree):
#: the text presenter folds their label into the children's line instead of
#: printing a line of their own, which gives ``layer 1: usr/bin/x: ...``.
CONTAINER_KINDS: Final = frozenset(
    {
        "ar",
        "cpio",
        "deb",
        "directory",
        "disk",
        "ext4",
        "iso9660",
        "json",
        "layer",
        "oci-archive",
        "oci-layout",
        "oci-manifest",
        "pacman-package",
        "squashfs",
        "tar",
    }
)


@dataclass(frozen=True)
class Difference:
    """One difference between two things, explained by its children.

    *source* names the thing (a path in a tree, ``layer 1``, a JSON field);
    *kind* names how it was compared (``tar``, ``elf``, ``text``, ``field``,
    ...); *summary* is one line for a human; *unified_diff* is an optional,
    bounded ``diff -u`` body; *comments* say what could not be done (a tool
    was missing, a file was too large), so an incomplete answer never looks
    complete. *origin* tells whether reprobuild or diffoscope produced it.
    """

    source: str
    kind: str
    summary: str
    unified_diff: str | None = None
    children: tuple[Difference, ...] = ()
    comments: tuple[str, ...] = ()
    origin: Origin = "reprobuild"

    @property
    def is_container(self) -> bool:
        """True when the node only groups children (see :data:`CONTAINER_KINDS`)."""
        return self.kind in CONTAINER_KINDS and bool(self.children) and not self.unified_diff

    def with_comments(self, *comments: str) -> Difference:
        """A copy with *comments* appended (duplicates dropped, order kept)."""
        merged = tuple(dict.fromkeys((*self.comments, *comments)))
        return replace(self, comments=merged)

    def relabel(self, source: str) -> Difference:
        return replace(self, source=source)

    def walk(self) -> list[Difference]:
        """This node and all its descendants, depth first (for tests and counts)."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out
