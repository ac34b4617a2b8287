"""Two and four ``reprobuild build`` processes on one store, with ``store gc``
looping beside them (issue 8): every build succeeds with the digests of a
lone build, the store verifies, and gc collected nothing a build uses.
Builds of one recipe share its directory (its out/ and lockfile too)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from reprobuild.store import Store
from tests.support.cli import reprobuild
from tests.support.crash import (
    DEMO_MIRROR,
    RECIPE,
    Reference,
    check_out_dir,
    reference_fixture,  # noqa: F401 - provides the fixture ``reference``
    start,
    temp_leftovers,
)

# Shares every input and the rootfs with RECIPE (the reference's recipe, r.repro).
RECIPE_B = RECIPE.replace(
    'in { t = tarball { inherit root; compression = "gzip"; }; '
    'o = oci_image { inherit root; tag = "crash:1"; }; }',
    'in { z = tarball { inherit root; compression = "zstd"; }; }',
)
FILES = {"a": "r", "b": "b"}  # build directory -> recipe name


@dataclass(frozen=True)
class Locked:
    root: Path  # a/ (r.repro) and b/ (b.repro), each with its lockfile
    store: Path  # one lone build of each
    digests: dict[str, dict[str, str]]  # directory -> output -> sha256 of the lone build


def digests(stdout: str) -> dict[str, str]:
    return {n: o["sha256"] for n, o in json.loads(stdout)["outputs"].items()}


@pytest.fixture(scope="module")
def locked(reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> Locked:
    """The reference recipe, and B locked and built alone once beside it."""
    root = tmp_path_factory.mktemp("concurrent")
    store = root / "alone"
    shutil.copytree(reference.store, store)
    reference.copy_to(root / "a")
    work = root / "b"
    work.mkdir()
    (work / "b.repro").write_text(RECIPE_B)
    r = reprobuild(work, "lock", "--mirror", DEMO_MIRROR, "b.repro")
    assert r.returncode == 0, r.stderr
    r = reprobuild(
        work, "build", "--json", "--store", str(store), "--mirror", DEMO_MIRROR, "b.repro"
    )
    assert r.returncode == 0, r.stderr
    shutil.rmtree(work / "out")
    return Locked(root, store, {"a": reference.digests, "b": digests(r.stdout)})


def _age_everything(store: Path, seconds: float) -> None:
    old = time.time() - seconds
    for path in store.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


def _gc_loop(store: Path, args: tuple[str, ...], stop: threading.Event, runs: list[str]) -> None:
    while not (store / "reprobuild" / "format").exists() and not stop.is_set():
        time.sleep(0.01)  # the first build creates the store
    while not stop.is_set():
        r = reprobuild(store.parent, "store", "gc", *args, "--store", str(store))
        runs.append(f"{r.returncode} {r.stdout.strip()} {r.stderr.strip()}")
        time.sleep(0.05)


def _run_concurrently(
    locked: Locked, tmp_path: Path, store: Path, names: list[str], gc_args: tuple[str, ...]
) -> None:
    works = {}
    for name in sorted(set(names)):  # same recipe, same directory: same out/ and lockfile
        work = tmp_path / name
        shutil.copytree(locked.root / name, work)
        works[name] = work
    stop = threading.Event()
    gc_runs: list[str] = []
    gc = threading.Thread(target=_gc_loop, args=(store, gc_args, stop, gc_runs))
    procs = []
    try:
        for name in names:
            procs.append(
                start(
                    works[name],
                    "build",
                    "--json",
                    "--store",
                    str(store),
                    "--mirror",
                    DEMO_MIRROR,
                    f"{FILES[name]}.repro",
                )
            )
            if len(procs) == 1:
                gc.start()
        results = [
            (name, *p.communicate(timeout=600), p.returncode)
            for name, p in zip(names, procs, strict=True)
        ]
    finally:
        stop.set()
        if gc.is_alive():
            gc.join()
        for p in procs:
            if p.poll() is None:
                p.kill()
    for name, stdout, stderr, code in results:
        assert code == 0, f"{name}: {stderr}"
        assert digests(stdout) == locked.digests[name], name
    assert gc_runs and all(run.startswith("0 ") for run in gc_runs), gc_runs
    r = reprobuild(tmp_path, "store", "verify", "--store", str(store))
    assert r.returncode == 0, r.stdout + r.stderr
    with Store.open(store, create=False) as s:  # nothing a finished build references was collected
        builds = s.list_builds()
        # build names are STEM-<hash of the recipe's path> (reprobuild/buildref.py)
        stems = sorted(re.sub(r"-[0-9a-f]{8}$", "", b.recipe) for b in builds)
        assert stems == sorted(FILES[n] for n in names)
        for info in builds:
            assert all(s.has(o.sha256) for o in info.record.outputs + info.record.sources)
            assert all(s.lookup_step(k) is not None for k in info.record.steps)
    for name, work in works.items():
        out = work / "out" / FILES[name]
        check_out_dir(out, store)
        assert temp_leftovers(out, work) == []
        lock = json.loads((work / f"{FILES[name]}.repro.lock").read_text())
        assert {n: o["sha256"] for n, o in lock["outputs"].items()} == locked.digests[name]


def test_two_builds_of_one_recipe_on_a_fresh_store_with_gc(locked: Locked, tmp_path: Path) -> None:
    """Both build every step at once (same keys, same content), one out/ directory."""
    _run_concurrently(locked, tmp_path, tmp_path / "store", ["a", "a"], ())


def test_four_builds_sharing_inputs_while_gc_expires_old_records(
    locked: Locked, tmp_path: Path
) -> None:
    """A store whose step records are old and referenced by no build: gc
    --keep-days 0 would expire them, and their content, unless a running
    build's lookup protects them; the builds use them as cache meanwhile."""
    store = tmp_path / "store"
    shutil.copytree(locked.store, store)  # every step of both recipes
    shutil.rmtree(store / "refs" / "builds")
    _age_everything(store, 7200)
    _run_concurrently(locked, tmp_path, store, ["a", "a", "b", "b"], ("--keep-days", "0"))


def test_gc_keeps_a_record_a_running_build_just_looked_up(locked: Locked, tmp_path: Path) -> None:
    """The deterministic form of the race above: a build has looked up a cached
    step (and will read its output next); ``gc --keep-days 0`` runs meanwhile."""
    store = tmp_path / "store"
    shutil.copytree(locked.store, store)
    shutil.rmtree(store / "refs" / "builds")
    _age_everything(store, 7200)
    with Store.open(store, create=False) as s:
        used, unused = sorted(e.ref for e in s.ls() if e.name == "tarball")
        record = s.lookup_step(used.removeprefix("refs/steps/"))
        assert record is not None
    r = reprobuild(tmp_path, "store", "gc", "--keep-days", "0", "--store", str(store))
    assert r.returncode == 0, r.stderr
    with Store.open(store, create=False) as s:
        keys = s.step_keys()
        assert used.removeprefix("refs/steps/") in keys
        assert all(s.has(o.sha256) for o in record.outputs)
        assert unused.removeprefix("refs/steps/") not in keys  # old and unused: expired
        assert s.verify().ok
