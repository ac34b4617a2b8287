"""Replay: the lockfile alone (plus inputs from a store or a mirror) gives the same bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import reprobuild as rb
from tests.support.recipes import LIGHT_DEMO

ROOT = Path(__file__).resolve().parents[2]
MIRROR = "debian=" + (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
DEAD = "debian=http://127.0.0.1:9/gone/"


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:  # type: ignore[type-arg]
    base = tmp_path_factory.mktemp("orig")
    (base / "demo.repro").write_text(LIGHT_DEMO)
    r = rb(base, "lock", "--embed-recipe", "--mirror", MIRROR, "demo.repro")
    assert r.returncode == 0, r.stderr
    r = rb(
        base, "build", "--json", "--store", str(base / "store"), "--mirror", MIRROR, "demo.repro"
    )
    assert r.returncode == 0, r.stderr
    return base, base / "store", json.loads(r.stdout)


def copy_recipe(src: Path, dst: Path, *, lock_only: bool = False) -> Path:
    dst.mkdir(parents=True)
    names = ["demo.repro.lock"] if lock_only else ["demo.repro", "demo.repro.lock"]
    for name in names:
        shutil.copy(src / name, dst / name)
    return dst


def test_replay_elsewhere_with_a_fresh_store(
    original: tuple[Path, Path, dict], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    base, _, built = original
    work = copy_recipe(base, tmp_path / "other" / "dir")
    prefix: tuple[str, ...] = ("faketime", "+398 days") if shutil.which("faketime") else ()
    r = rb(
        work,
        "replay",
        "--json",
        "--store",
        str(tmp_path / "fresh"),
        "--mirror",
        MIRROR,
        "demo.repro.lock",
        env={"HOME": str(tmp_path), "TZ": "Etc/GMT-14", "LC_ALL": "C"},
        prefix=prefix,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["identical"] is True
    for name, info in out["outputs"].items():
        assert info["status"] == "identical"
        assert info["actual"] == built["outputs"][name]["sha256"]
    assert (work / "demo.repro.lock").read_text() == (base / "demo.repro.lock").read_text()


def test_lockfile_alone_with_embedded_recipe(
    original: tuple[Path, Path, dict], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    base, store, _ = original
    work = copy_recipe(base, tmp_path / "lonely", lock_only=True)
    r = rb(work, "replay", "--store", str(store), "demo.repro.lock")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("identical") == 3


def test_replay_a_build_ref_from_the_store(
    original: tuple[Path, Path, dict], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    _, store, _ = original
    r = rb(tmp_path, "replay", "--store", str(store), "demo/1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("identical") == 3


def test_edited_digest_makes_replay_exit_1(
    original: tuple[Path, Path, dict], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    base, store, _ = original
    work = copy_recipe(base, tmp_path / "edited")
    lock = json.loads((work / "demo.repro.lock").read_text())
    lock["outputs"]["tarball"]["sha256"] = "0" * 64
    (work / "demo.repro.lock").write_text(json.dumps(lock, sort_keys=True, indent=2) + "\n")
    r = rb(work, "replay", "--store", str(store), "demo.repro.lock")
    assert r.returncode == 1
    assert "tarball" in r.stdout and "DIFFERS" in r.stdout
    assert "full report:" in r.stderr


def test_pulled_store_replays_without_a_mirror(
    original: tuple[Path, Path, dict], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    base, store, _ = original
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    assert rb(tmp_path, "store", "push", str(remote), "--store", str(store)).returncode == 0
    assert (
        rb(tmp_path, "store", "pull", str(remote), "--store", str(tmp_path / "pulled")).returncode
        == 0
    )
    work = copy_recipe(base, tmp_path / "offline")
    r = rb(work, "replay", "--store", str(tmp_path / "pulled"), "--mirror", DEAD, "demo.repro.lock")
    assert r.returncode == 0, r.stderr


def test_input_found_nowhere_exits_2(original: tuple[Path, Path, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    base, _, _ = original
    work = copy_recipe(base, tmp_path / "nowhere")
    r = rb(
        work,
        "replay",
        "--store",
        str(tmp_path / "empty"),
        "--mirror",
        DEAD,
        "demo.repro.lock",
        env={"REPROBUILD_FETCH_RETRIES": "1"},
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "127.0.0.1:9" in r.stderr and "is not in the store" in r.stderr  # places tried
