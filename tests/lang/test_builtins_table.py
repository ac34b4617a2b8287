"""The table of builtins: documented, in docs/builtins.md, and each golden-tested."""

from __future__ import annotations

import re
from pathlib import Path

from reprobuild.lang.builtins_doc import GROUPS, markdown
from reprobuild.lang.primops import TABLE

HERE = Path(__file__).parent
DOC = HERE.parent.parent / "docs" / "builtins.md"


def test_docs_builtins_md_is_generated_from_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == markdown(), (
        "docs/builtins.md is stale: python -m reprobuild.lang.builtins_doc > docs/builtins.md"
    )


def test_every_builtin_is_documented_and_grouped() -> None:
    assert len(TABLE) >= 60
    for b in TABLE.values():
        assert b.group in GROUPS, b.name
        assert b.doc[:1].isupper() or b.doc.startswith(("*", "`")), b.name


def test_every_builtin_has_a_golden_test_checked_by_nix() -> None:
    """Each name appears in an eval-okay test, whose expectation Nix 2.8 wrote."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in HERE.glob("eval-okay-*.repro"))
    used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_']*", text))
    missing = sorted(name for name in TABLE if name not in used)
    assert not missing, f"builtins without an eval-okay golden test: {missing}"
