"""Helpers for the crash, concurrency and disk-full tests: run the real CLI,
kill it with SIGKILL at a chosen moment, and check what it left behind."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import reprobuild

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "snapshots" / "demo"
DEMO_MIRROR = f"debian={(DEMO / 'archive' / 'debian').as_uri()}/"

# One package, a tarball and an OCI image: a cold build takes well under a
# second here, so a random kill lands in real work (fetch, rootfs, export).
# (Compressed, so the tarball is not the same object as the rootfs tar.)
RECIPE = """\
let
  snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };
  root = rootfs { snapshot = snap; variant = "none"; packages = [ "netbase" ]; };
in { t = tarball { inherit root; compression = "gzip"; }; o = oci_image { inherit root; tag = "crash:1"; }; }
"""


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without REPROBUILD_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPROBUILD_")}
    env.update(extra or {})
    return env


def start(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """``reprobuild ARGS`` in its own process group (so a kill reaches its children)."""
    return subprocess.Popen(
        [sys.executable, "-m", "reprobuild", *args],
        cwd=cwd,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


class Killer:
    """Runs ``reprobuild ARGS`` and SIGKILLs its process group at a seeded random
    fraction of how long the command takes on this machine (learnt from the
    runs that finished first), so kills land in its work however loaded the
    machine is."""

    def __init__(self, rng: random.Random, span: float) -> None:
        self.rng = rng
        self.span = span  # seconds: the first guess of the command's duration
        self.runs = self.killed = 0

    def run(self, cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> bool:
        """True if the command was killed, False if it finished (successfully) first."""
        delay = self.rng.uniform(0.1, 1.0) * self.span
        began = time.monotonic()
        proc = start(cwd, *args, env=env)
        while proc.poll() is None and time.monotonic() - began < delay:
            time.sleep(0.005)
        self.runs += 1
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            self.killed += 1
            return True
        _, err = proc.communicate()
        assert proc.returncode == 0, err
        self.span = time.monotonic() - began
        return False


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_objects(store: Path) -> set[str]:
    """Names of the content objects in a store directory."""
    names: set[str] = set()
    for kept in ("objects", "manifests"):  # whole, or as chunks (named by a manifest)
        top = store / "lfs" / kept
        names.update(p.name for p in top.rglob("*") if p.is_file())
    return names


def check_oci_layout(layout: Path) -> None:
    """An OCI layout directory is whole: every blob hashes to its name and
    every descriptor reachable from index.json is present."""
    assert json.loads((layout / "oci-layout").read_text())["imageLayoutVersion"]
    blobs = layout / "blobs" / "sha256"
    for blob in blobs.iterdir():
        assert sha256_file(blob) == blob.name, f"{blob} is damaged"
    todo = list(json.loads((layout / "index.json").read_text())["manifests"])
    while todo:
        desc = todo.pop()
        blob = blobs / desc["digest"].removeprefix("sha256:")
        assert blob.is_file(), f"{layout} lacks {desc['digest']}"
        assert blob.stat().st_size == desc["size"]
        if "manifest" in desc["mediaType"] or "index" in desc["mediaType"]:
            doc = json.loads(blob.read_bytes())
            todo += doc.get("manifests", []) + doc.get("layers", [])
            if "config" in doc:
                todo.append(doc["config"])


def check_out_dir(out: Path, store: Path) -> None:
    """Nothing partial in an output directory: every visible file is a copy of
    a store object, every visible directory a whole OCI layout; the only other
    entries are dot-named temp files a killed writer left (cleaned by the next
    build)."""
    if not out.exists():
        return
    objects = store_objects(store)
    for entry in sorted(out.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            check_oci_layout(entry)
        else:
            assert sha256_file(entry) in objects, f"{entry} is not a whole output"


def temp_leftovers(*dirs: Path) -> list[Path]:
    """Dot-named temp entries (of exports and lockfile writes) in ``dirs``; the
    output state a finished build records (reprobuild/outstate.py) is not one."""
    from reprobuild.outstate import STATE_NAME

    return sorted(
        p
        for d in dirs
        if d.is_dir()
        for p in d.iterdir()
        if p.name.startswith(".") and p.name != STATE_NAME
    )


@dataclass(frozen=True)
class Reference:
    """RECIPE locked, and built once without interruption: the digests every
    crashed, damaged or concurrent store must converge to."""

    work: Path  # r.repro and r.repro.lock (as locked: no outputs recorded yet)
    lock_text: str
    store: Path  # the store of that one build
    digests: dict[str, str]
    steps: int  # how many steps the build has

    def copy_to(self, dest: Path) -> Path:
        """A private recipe directory (recipe and lockfile) to build in."""
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("r.repro", "r.repro.lock"):
            shutil.copy(self.work / name, dest / name)
        return dest


@pytest.fixture(scope="session", name="reference")
def reference_fixture(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """``reference``, shared by the reliability tests (import it into the test module)."""
    root = tmp_path_factory.mktemp("reference")
    work = root / "w"
    work.mkdir()
    (work / "r.repro").write_text(RECIPE)
    r = reprobuild(work, "lock", "--mirror", DEMO_MIRROR, "r.repro")
    assert r.returncode == 0, r.stderr
    lock_text = (work / "r.repro.lock").read_text()
    r = reprobuild(
        work, "build", "--json", "--store", str(root / "store"), "--mirror", DEMO_MIRROR, "r.repro"
    )
    assert r.returncode == 0, r.stderr
    (work / "r.repro.lock").write_text(lock_text)
    shutil.rmtree(work / "out")
    result = json.loads(r.stdout)
    return Reference(
        work,
        lock_text,
        root / "store",
        {n: o["sha256"] for n, o in result["outputs"].items()},
        result["steps"]["total"],
    )
