"""Row 'replay silently uses the recipe embedded in a lockfile' of issue 18."""

from __future__ import annotations

from pathlib import Path

from tests.security.conftest import mirror_arg
from tests.support.cli import reprobuild
from tests.support.recipes import NETBASE_RECIPE


def test_replay_uses_the_recipe_given_and_the_embedded_one_only_when_asked(
    tmp_path: Path, demo_mirror: Path
) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "r.repro").write_text(NETBASE_RECIPE)
    mirror = ["--mirror", mirror_arg(demo_mirror)]
    store = ["--store", str(tmp_path / "store")]
    assert reprobuild(work, "lock", "--embed-recipe", *mirror, "r.repro").returncode == 0
    assert reprobuild(work, "build", "--locked", *store, *mirror, "r.repro").returncode == 0
    # The user's recipe is not the one the lockfile carries.
    (work / "r.repro").write_text("# the user's own edit\n" + NETBASE_RECIPE)
    r = reprobuild(work, "replay", *store, *mirror, "r.repro.lock")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "does not describe" in r.stderr and "--embedded-recipe" in r.stderr
    r = reprobuild(work, "replay", "--embedded-recipe", *store, *mirror, "r.repro.lock")
    assert r.returncode == 0, r.stderr
    assert "replaying the recipe embedded in" in r.stderr and "identical" in r.stdout
    # Without a recipe file, the embedded one is used, and that is said too.
    (work / "r.repro").unlink()
    r = reprobuild(work, "replay", *store, *mirror, "r.repro.lock")
    assert r.returncode == 0, r.stderr
    assert "replaying the recipe embedded in" in r.stderr
