"""fmt must round-trip: formatting twice changes nothing, evaluation is unchanged,
and no comment is lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.errors import ParseError
from reprobuild.lang.fmt import format_source
from reprobuild.lang.parse import parse

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CORPUS = sorted(HERE.glob("eval-*.repro")) + sorted((ROOT / "recipes").glob("*.repro"))


def _parses(path: Path) -> bool:
    try:
        parse(path.read_text(), path.name)
    except ParseError:
        return False
    return True


@pytest.mark.parametrize("recipe", [p for p in CORPUS if _parses(p)], ids=lambda p: p.name)
def test_fmt_idempotent_and_keeps_comments(recipe: Path) -> None:
    text = recipe.read_text()
    once = format_source(parse(text, recipe.name))
    twice = format_source(parse(once, recipe.name))
    assert once == twice
    before = sorted(c.text.strip() for c in parse(text, recipe.name).comments)
    after = sorted(c.text.strip() for c in parse(once, recipe.name).comments)
    assert before == after


@pytest.mark.parametrize("recipe", sorted(HERE.glob("eval-okay-*.repro")), ids=lambda p: p.stem)
def test_fmt_preserves_meaning(
    recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Copy the corpus directory so imports still resolve next to the formatted file.
    work = tmp_path / "lang"
    shutil.copytree(HERE, work, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    target = work / recipe.name
    assert api.format_file(target, write=True) in (True, False)
    monkeypatch.chdir(work)
    expected = json.loads(recipe.with_suffix(".exp.json").read_text())
    assert api.evaluate(Path(recipe.name), strict=True).to_json() == expected


def test_fmt_layout() -> None:
    src = "{a=1;b={c=[1 2];};# note\nd=x: x+1;}"
    out = format_source(parse(src, "t"))
    assert out == "{\n  a = 1;\n  b = { c = [ 1 2 ]; };\n  # note\n  d = x: x + 1;\n}\n"


def test_fmt_check_cli(tmp_path: Path) -> None:
    f = tmp_path / "r.repro"
    f.write_text("{a=1;}")
    assert api.format_file(f, write=False) is True
    assert f.read_text() == "{a=1;}"
    assert api.format_file(f, write=True) is True
    assert f.read_text() == "{ a = 1; }\n"
    assert api.format_file(f, write=False) is False
