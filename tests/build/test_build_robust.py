"""Builds that are killed, run concurrently, or replayed from a pulled store."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_MIRROR = (ROOT / "snapshots" / "demo" / "archive" / "debian").as_uri() + "/"
RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs { snapshot = snap; variant = "none"; packages = [ "busybox-static" "base-files" "netbase" "tzdata" ]; };
in { t = tarball { inherit root; compression = "gzip"; }; }
"""


def cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "reprobuild", *args]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}


def build(work: Path, store: Path, *extra: str) -> dict:  # type: ignore[type-arg]
    r = subprocess.run(
        cmd("build", "--json", "--store", str(store), *extra, "r.repro"),
        cwd=work,
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def verify(store: Path) -> None:
    r = subprocess.run(
        cmd("store", "verify", "--store", str(store)), capture_output=True, text=True, env=env()
    )
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def work(tmp_path: Path) -> Path:
    w = tmp_path / "recipe"
    w.mkdir()
    (w / "r.repro").write_text(RECIPE)
    # Lock once, so every killed build below works from the same lockfile.
    subprocess.run(
        cmd("lock", "--mirror", f"debian={DEMO_MIRROR}", "r.repro"),
        cwd=w,
        check=True,
        env=env(),
        capture_output=True,
    )
    return w


# Superseded in the default run: tests/reliability/test_crashes.py runs these kills (and lock, gc, pull) in the default run.
@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_a_consistent_store(work: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    rng = random.Random(20261122)
    for _ in range(20):
        proc = subprocess.Popen(
            cmd(
                "build", "-q", "--store", str(store), "--mirror", f"debian={DEMO_MIRROR}", "r.repro"
            ),
            cwd=work,
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.2, 4.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if store.exists():
            verify(store)
    out = build(work, store, "--mirror", f"debian={DEMO_MIRROR}")
    fresh = build(work, tmp_path / "fresh-store", "--mirror", f"debian={DEMO_MIRROR}")
    assert out["outputs"]["t"]["sha256"] == fresh["outputs"]["t"]["sha256"]
    verify(store)


# Superseded in the default run: tests/reliability/test_concurrency.py covers 2 and 4 builds beside gc in the default run.
@pytest.mark.slow
def test_two_concurrent_builds_on_a_fresh_store(work: Path, tmp_path: Path) -> None:
    store = tmp_path / "shared-store"
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda _: build(work, store, "--mirror", f"debian={DEMO_MIRROR}"), range(2))
        )
    assert results[0]["outputs"]["t"]["sha256"] == results[1]["outputs"]["t"]["sha256"]
    verify(store)


def test_push_pull_then_build_without_any_mirror(work: Path, tmp_path: Path) -> None:
    store = tmp_path / "origin-store"
    first = build(work, store, "--mirror", f"debian={DEMO_MIRROR}")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    for args in (
        ("store", "push", str(remote), "--store", str(store)),
        ("store", "pull", str(remote), "--store", str(tmp_path / "other-store")),
    ):
        r = subprocess.run(cmd(*args), capture_output=True, text=True, env=env())
        assert r.returncode == 0, r.stderr
    # Another machine: the recipe and lockfile, the pulled store, and a dead mirror.
    other = tmp_path / "elsewhere"
    other.mkdir()
    for name in ("r.repro", "r.repro.lock"):
        (other / name).write_bytes((work / name).read_bytes())
    out = build(
        other,
        tmp_path / "other-store",
        "--locked",
        "--mirror",
        "debian=http://127.0.0.1:9/nowhere/",
    )
    assert out["outputs"]["t"]["sha256"] == first["outputs"]["t"]["sha256"]
    # The outputs are in the pulled store too: nothing had to run.
    assert out["steps"]["run"] == 0
