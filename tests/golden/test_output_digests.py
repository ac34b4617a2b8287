"""Golden digests: each committed lockfile's recorded output sha256 is what
``build --locked`` gives today, in a fresh store, from a copy elsewhere.

A change of any output's bytes fails here. When the change is intended, run
``make golden`` and commit the new digests with the reason in the message
(see tests/support/golden.py and docs/testing.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reprobuild import api
from tests.support.golden import GOLDEN, NOT_GOLDEN, ROOT, Golden, GoldenUnavailable, build

LOCKED_RECIPES = sorted(
    p.relative_to(ROOT)
    for p in (ROOT / "recipes").rglob("*.repro")
    if p.with_suffix(".repro.lock").exists()
)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_every_locked_recipe_is_golden_or_says_why_not() -> None:
    golden = {g.recipe for g in GOLDEN}
    assert golden.isdisjoint(NOT_GOLDEN)
    assert set(LOCKED_RECIPES) == golden | set(NOT_GOLDEN), (
        "a committed lockfile is neither in GOLDEN nor in NOT_GOLDEN (tests/support/golden.py)"
    )


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda g: g.name)
def test_lockfile_records_every_output(golden: Golden) -> None:
    outputs = json.loads(golden.lockfile.read_text()).get("outputs", {})
    planned = {name for name, _key in api.make_plan(golden.path).outputs}
    assert set(outputs) == planned, "run 'make golden' and commit the digests with the reason"
    for name, o in outputs.items():
        assert len(o["sha256"]) == 64 and int(o["sha256"], 16) >= 0, name


def _digest_on_disk(path: Path) -> str:
    """The sha256 of an exported output as a consumer computes it."""
    if path.is_dir():  # an OCI layout: the manifest the index points at
        index = json.loads((path / "index.json").read_text())
        # The image; the lockfile and SBOM artifacts about it (referrers) have an artifactType.
        (manifest,) = [m for m in index["manifests"] if "artifactType" not in m]
        algo, digest = manifest["digest"].split(":")
        assert algo == "sha256"
        assert _sha256(path / "blobs" / "sha256" / digest) == digest
        return str(digest)
    return _sha256(path)


@pytest.mark.parametrize(
    "golden",
    [pytest.param(g, marks=[pytest.mark.slow] if g.slow else [], id=g.name) for g in GOLDEN],
)
def test_build_locked_gives_the_recorded_digests(golden: Golden, tmp_path: Path) -> None:
    expected = json.loads(golden.lockfile.read_text())["outputs"]
    try:
        b = build(golden, tmp_path)
    except GoldenUnavailable as exc:
        pytest.skip(f"cannot serve {golden.name}'s packages here: {exc}")
    # exit 1 ("not reproduced: NAMES differ from the lockfile's record") is the failure we look for
    assert b.proc.returncode == 0, (
        f"{golden.recipe}: output bytes changed (or the build failed).\n{b.proc.stderr[-3000:]}\n"
        "If the change is intended: 'make golden' and give the reason in the commit message."
    )
    got = {name: o["sha256"] for name, o in b.summary["outputs"].items()}
    assert got == {name: o["sha256"] for name, o in expected.items()}
    for name, o in b.summary["outputs"].items():
        assert _digest_on_disk(Path(o["path"])) == expected[name]["sha256"], name
        assert o["media_type"] == expected[name]["media_type"], name
    # --locked never rewrites the lockfile
    assert b.recipe.with_suffix(".repro.lock").read_bytes() == golden.lockfile.read_bytes()
