"""Every recipe in recipes/ evaluates, plans, is canonically formatted, and its
lockfile is current and reproducible from the same snapshot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from reprobuild import api
from reprobuild.locking import Sources

ROOT = Path(__file__).resolve().parent.parent
# recipes/lib holds libraries (functions for other recipes), not recipes.
LIBRARIES = sorted((ROOT / "recipes" / "lib").rglob("*.repro"))
RECIPES = sorted(set((ROOT / "recipes").rglob("*.repro")) - set(LIBRARIES))
SHARED = ROOT.parent / "shared" / "mirrors" / "debian" / "archive" / "debian"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_evaluates_plans_and_is_formatted(recipe: Path) -> None:
    data = api.evaluate(recipe, strict=True).to_json()
    assert data, "a recipe must have outputs"
    plan = api.make_plan(recipe)
    assert plan.outputs
    assert api.format_file(recipe, write=False) is False, "run 'reprobuild fmt' on it"


@pytest.mark.parametrize("library", LIBRARIES, ids=lambda p: p.name)
def test_library_is_a_function_and_formatted(library: Path) -> None:
    from reprobuild.lang.values import Closure

    assert isinstance(api.evaluate(library, strict=False).value, Closure)
    assert api.format_file(library, write=False) is False, "run 'reprobuild fmt' on it"


def _locked_recipes() -> list[Any]:
    """Recipes with a lockfile; go-hello's relock needs its test mirror (golang-go
    fetched with apt-get download, a minute or more): slow."""
    from tests.support.golden import GOLDEN, test_mirror

    on_test_mirror = {g.path for g in GOLDEN if g.mirror is test_mirror}
    return [
        pytest.param(r, marks=[pytest.mark.slow] if r in on_test_mirror else [], id=r.name)
        for r in RECIPES
        if r.with_name(r.name + ".lock").exists()
    ]


@pytest.mark.parametrize("recipe", _locked_recipes())
def test_lockfile_is_current_and_relocks_identically(recipe: Path, tmp_path: Path) -> None:
    # Current: locking again needs no network at all.
    assert api.lock(recipe, sources=Sources(mirrors={"debian": "http://127.0.0.1:9/"})).changed is False
    if not SHARED.exists():
        pytest.skip("the shared Debian mirror is not beside the repository")
    shutil.copytree(recipe.parent, tmp_path / "r", ignore=shutil.ignore_patterns("*.lock", "out"))
    copy = tmp_path / "r" / recipe.name
    api.lock(copy, sources=_sources_it_was_locked_from(recipe, tmp_path / "mirror"))
    fresh = json.loads(copy.with_name(copy.name + ".lock").read_text())
    committed = json.loads(recipe.with_name(recipe.name + ".lock").read_text())
    committed.pop("outputs", None)
    assert fresh == committed


def _sources_it_was_locked_from(recipe: Path, scratch: Path) -> Sources:
    """The signed index the committed lockfile was made from: Debian's own (the
    shared mirror's), but for go-hello's signed test mirror (the golden table)."""
    from tests.support.golden import GOLDEN, GoldenUnavailable, test_mirror

    for golden in GOLDEN:
        if golden.path == recipe and golden.mirror is test_mirror:
            scratch.mkdir(parents=True, exist_ok=True)
            try:
                m = golden.mirror(golden.lockfile, scratch)
            except GoldenUnavailable as exc:
                pytest.skip(str(exc))
            keyrings = {"debian": m.keyring} if m.keyring else {}
            return Sources(mirrors={"debian": m.url}, keyrings=keyrings)
    return Sources(mirrors={"debian": SHARED.as_uri() + "/"})
