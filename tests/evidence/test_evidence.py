"""Recorded output digests are evidence: `build` never overwrites them (issue 15).

Real builds of the smallest recipe (one unconfigured package) from the
embedded demo mirror: a changed recorded digest makes a plain `build` exit 1
naming both digests, with the lockfile byte-identical afterwards; only
`build --record` rewrites it, and every lockfile change is announced.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import reprobuild
from tests.support.recipes import NETBASE_RECIPE

ROOT = Path(__file__).resolve().parents[2]
MIRROR = f"debian=file://{ROOT}/snapshots/demo/archive/debian/"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A fresh recipe built once: (its directory, the store, the first build's stderr)."""
    work = tmp_path_factory.mktemp("evidence")
    (work / "net.repro").write_text(NETBASE_RECIPE)
    store = work / "store"
    r = reprobuild(work, "build", "--store", str(store), "--mirror", MIRROR, "net.repro")
    assert r.returncode == 0, r.stderr
    return work, store, r.stderr


def _build(work: Path, store: Path, *args: str):  # type: ignore[no-untyped-def]
    return reprobuild(
        work, "build", "-q", "--store", str(store), "--mirror", MIRROR, *args, "net.repro"
    )


def test_creating_the_lockfile_is_announced(built: tuple[Path, Path, str]) -> None:
    _, _, stderr = built
    assert "created net.repro.lock" in stderr
    assert "snapshot snap: debian 20260711T101637Z" in stderr
    assert "output t: recorded sha256:" in stderr


def test_a_changed_recorded_digest_is_refused_and_kept(built: tuple[Path, Path, str]) -> None:
    work, store, _ = built
    lock = work / "net.repro.lock"
    good = lock.read_text()
    data = json.loads(good)
    real = data["outputs"]["t"]["sha256"]
    data["outputs"]["t"]["sha256"] = "0" * 64
    tampered = json.dumps(data, indent=2, sort_keys=True) + "\n"
    lock.write_text(tampered)
    try:
        r = _build(work, store)
        assert r.returncode == 1, r.stderr
        assert "Traceback" not in r.stderr
        assert f"recorded sha256:{'0' * 64}" in r.stderr
        assert f"built    sha256:{real}" in r.stderr
        assert "build --record" in r.stderr
        assert lock.read_text() == tampered  # the evidence is left as it was

        r = _build(work, store, "--locked")
        assert r.returncode == 1 and "not reproduced: t differs" in r.stderr
        assert lock.read_text() == tampered

        r = _build(work, store, "--record")
        assert r.returncode == 0, r.stderr
        assert f"output t: sha256:{'0' * 64} -> sha256:{real}" in r.stderr
        assert lock.read_text() == good
    finally:
        lock.write_text(good)


def test_an_unchanged_build_writes_and_announces_nothing(built: tuple[Path, Path, str]) -> None:
    work, store, _ = built
    lock = work / "net.repro.lock"
    before = lock.read_text()
    r = _build(work, store)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # -q, and no lockfile change to announce
    assert lock.read_text() == before


def test_a_stale_lockfile_is_relocked_with_the_reason(built: tuple[Path, Path, str]) -> None:
    work, store, _ = built
    recipe = work / "net.repro"
    lock = work / "net.repro.lock"
    old_recipe, old_lock = recipe.read_text(), lock.read_text()
    try:
        recipe.write_text(old_recipe.replace('[ "netbase" ]', '[ "netbase" "tzdata" ]'))
        r = _build(work, store)
        assert r.returncode == 0, r.stderr
        assert "updated net.repro.lock (recipe changed" in r.stderr
        assert "added 2 package(s): debconf 1.5.82, tzdata 2026b-0+deb12u1" in r.stderr
        assert "output t: record dropped (was sha256:" in r.stderr
    finally:
        recipe.write_text(old_recipe)
        lock.write_text(old_lock)


def test_locked_without_a_lockfile_says_how_to_make_one(tmp_path: Path) -> None:
    (tmp_path / "net.repro").write_text(NETBASE_RECIPE)
    r = reprobuild(tmp_path, "build", "--locked", "--store", str(tmp_path / "s"), "net.repro")
    assert r.returncode == 2
    assert "net.repro.lock does not exist and --locked forbids creating it" in r.stderr
    assert "hint: run 'reprobuild lock net.repro' to create it" in r.stderr
    assert not (tmp_path / "s").exists()


def test_lock_prints_what_changed(tmp_path: Path) -> None:
    (tmp_path / "net.repro").write_text(NETBASE_RECIPE)
    r = reprobuild(tmp_path, "lock", "--mirror", MIRROR, "net.repro")
    assert r.returncode == 0, r.stderr
    assert "wrote net.repro.lock (1 packages" in r.stdout
    assert "added 1 package(s): netbase 6.4" in r.stdout
    recipe = tmp_path / "net.repro"
    recipe.write_text(recipe.read_text().replace('[ "netbase" ]', '[ "tzdata" ]'))
    r = reprobuild(tmp_path, "lock", "--mirror", MIRROR, "--json", "net.repro")
    assert r.returncode == 0, r.stderr
    changes = json.loads(r.stdout)["changes"]
    assert changes["added"] == ["debconf 1.5.82", "tzdata 2026b-0+deb12u1"]
    assert changes["removed"] == ["netbase 6.4"]
