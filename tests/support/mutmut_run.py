"""``mutmut`` as ``make mutate`` runs it: with one operator limited, said here.

String literals inside a ``raise`` statement (the text of an error message)
are not mutated. mutmut would turn each into ``"XX...XX"``, lower and upper
case; a test can only kill those by comparing a message's exact text, which
is a test written to the mutant. Everything else a ``raise`` holds (which
exception, its computed arguments, whether it is raised at all) is mutated
as usual. docs/testing.md states this limit beside the scores.
"""

from __future__ import annotations

import libcst as cst
from mutmut.__main__ import cli
from mutmut.mutation.file_mutation import MutationVisitor

_create_mutations = MutationVisitor._create_mutations
_on_visit = MutationVisitor.on_visit


def _depth(visitor: MutationVisitor) -> int:
    return int(getattr(visitor, "_raise_depth", 0))


def on_visit(self: MutationVisitor, node: cst.CSTNode) -> bool:
    if isinstance(node, cst.Raise):
        self._raise_depth = _depth(self) + 1  # type: ignore[attr-defined]
    return bool(_on_visit(self, node))


def on_leave(self: MutationVisitor, original_node: cst.CSTNode) -> None:
    if isinstance(original_node, cst.Raise):
        self._raise_depth = _depth(self) - 1  # type: ignore[attr-defined]


def create_mutations(self: MutationVisitor, node: cst.CSTNode) -> None:
    if _depth(self) and isinstance(node, cst.BaseString):
        return
    _create_mutations(self, node)


MutationVisitor.on_visit = on_visit  # type: ignore[method-assign]
MutationVisitor.on_leave = on_leave  # type: ignore[method-assign]
MutationVisitor._create_mutations = create_mutations  # type: ignore[method-assign]

if __name__ == "__main__":
    cli()
