"""Golden tests: eval-okay-NAME.repro must print NAME.exp.json (made by Nix 2.8
where Nix can evaluate it); eval-fail-NAME.repro must fail with NAME.exp.err."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.errors import RecipeError

HERE = Path(__file__).parent
OKAY = sorted(HERE.glob("eval-okay-*.repro"))
FAIL = sorted(HERE.glob("eval-fail-*.repro"))


def test_corpus_size() -> None:
    assert len(OKAY) >= 60
    assert len(FAIL) >= 25


@pytest.mark.parametrize("recipe", OKAY, ids=lambda p: p.stem)
def test_eval_okay(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    expected = json.loads(recipe.with_suffix(".exp.json").read_text())
    result = api.evaluate(Path(recipe.name), strict=True)
    assert result.to_json() == expected


@pytest.mark.parametrize("recipe", FAIL, ids=lambda p: p.stem)
def test_eval_fail(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    with pytest.raises(RecipeError) as info:
        api.evaluate(Path(recipe.name), strict=True).to_json()
    rendered = info.value.render() + "\n"
    exp = recipe.with_suffix(".exp.err")
    if os.environ.get("REPROBUILD_REGEN_GOLDEN") == "1":
        exp.write_text(rendered)
    assert rendered == exp.read_text()
