"""kill -9 of the real CLI at seeded random moments (issue 8).

Fifty runs in the default suite, across ``build``, ``lock``, ``store gc`` and
``store pull`` (more behind ``-m slow``). After every kill: the store
verifies, the lockfile is whole, and ``out/`` holds only whole outputs; at
the end a rerun converges to the digests of an uninterrupted build, and
``reprobuild store verify`` exits 0.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reprobuild import lockfile as lf
from reprobuild.store import BuildRecord, Output, StepRecord, Store
from tests.support.cli import reprobuild
from tests.support.crash import (
    DEMO_MIRROR,
    RECIPE,
    Killer,
    Reference,
    check_out_dir,
    reference_fixture,  # noqa: F401 - provides the fixture ``reference``
    temp_leftovers,
)

EPOCH = 1783764997  # the demo snapshot's time: the epoch of an unpinned build
DEAD_MIRROR = "debian=http://127.0.0.1:9/nowhere/"
RUNS = {"build": 20, "lock": 10, "gc": 10, "pull": 10}  # 50 in the default run
SLOW_RUNS = {"build": 80, "lock": 40, "gc": 40, "pull": 40}
SPAN = {"build": 1.0, "lock": 1.0, "gc": 0.5, "pull": 0.7}  # first guesses, in seconds


@dataclass(frozen=True)
class Base:
    """An uninterrupted run: the digests every crashed store must converge to."""

    work: Path
    lock_text: str
    digests: dict[str, str]
    remote: Path


def build(work: Path, store: Path, *extra: str, epoch: int | None = None) -> dict:  # type: ignore[type-arg]
    env = {"SOURCE_DATE_EPOCH": str(epoch)} if epoch is not None else None
    r = reprobuild(work, "build", "--json", "--store", str(store), *extra, "r.repro", env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def digests(result: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {name: o["sha256"] for name, o in result["outputs"].items()}


def cli_verify(store: Path) -> None:
    r = reprobuild(store.parent, "store", "verify", "--store", str(store))
    assert r.returncode == 0, r.stdout + r.stderr


def sound(store: Path) -> None:
    """The store verifies and every build it records is complete."""
    if not store.exists():
        return
    with Store.open(store, create=False) as s:
        report = s.verify()
        assert report.ok, [str(p) for p in report.problems]
        for info in s.list_builds():
            assert all(s.has(o.sha256) for o in info.record.outputs + info.record.sources)
            for key in info.record.steps:
                assert s.lookup_step(key) is not None, f"{info.ref} lost step {key}"


@pytest.fixture(scope="module")
def base(reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> Base:
    """The reference build, plus a remote holding it, another build and a
    step no build uses (4 MB: a pull long enough to be killed in)."""
    root = tmp_path_factory.mktemp("crash-base")
    origin = root / "origin"
    shutil.copytree(reference.store, origin)
    build(reference.copy_to(root / "w"), origin, "--mirror", DEMO_MIRROR, epoch=EPOCH + 100)
    with Store.open(origin) as s:  # gc --keep-days 0 expires this one
        blobs = [s.put_bytes(os.urandom(2 << 20)) for _ in range(2)]
        key = "f" * 64
        outputs = tuple(Output(f"x{i}", b.sha256, b.size) for i, b in enumerate(blobs))
        s.record_step(key, StepRecord("test", key, outputs=outputs))
    remote = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    r = reprobuild(root, "store", "push", str(remote), "--store", str(origin))
    assert r.returncode == 0, r.stderr
    return Base(reference.work, reference.lock_text, reference.digests, remote)


def copy_work(base: Base, tmp_path: Path) -> Path:
    work = tmp_path / "w"
    work.mkdir()
    for name in ("r.repro", "r.repro.lock"):
        shutil.copy(base.work / name, work / name)
    return work


def crash_build(base: Base, tmp_path: Path, runs: int, kill: Killer) -> None:
    work = copy_work(base, tmp_path)
    store = tmp_path / "store"
    out = work / "out" / "r"
    for i in range(runs):
        # A new epoch gives every non-input step a new key: each run has real
        # work (rootfs, tarball, image, export, record) to be killed in.
        # --record: each epoch makes other bytes than the last finished run recorded.
        kill.run(
            work,
            "build",
            "-q",
            "--record",
            "--store",
            str(store),
            "--mirror",
            DEMO_MIRROR,
            "r.repro",
            env={"SOURCE_DATE_EPOCH": str(EPOCH + 1 + i)},
        )
        sound(store)
        lf.load(work / "r.repro.lock")  # whole (temp file + rename)
        check_out_dir(out, store)
    cli_verify(store)
    assert digests(build(work, store, "--record", "--mirror", DEMO_MIRROR)) == base.digests
    check_out_dir(out, store)
    assert temp_leftovers(out, work) == []
    cli_verify(store)


def crash_lock(base: Base, tmp_path: Path, runs: int, kill: Killer) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "r.repro").write_text(RECIPE)
    cache = tmp_path / "cache"
    for i in range(runs):
        if i % 3 == 0:  # cold: the kill lands in fetching and verifying indexes
            shutil.rmtree(cache, ignore_errors=True)
        kill.run(
            work,
            "lock",
            "--update",
            "--mirror",
            DEMO_MIRROR,
            "r.repro",
            env={"XDG_CACHE_HOME": str(cache)},
        )
        lock = work / "r.repro.lock"
        if lock.exists():
            assert lock.read_text() == base.lock_text  # never half-written
    # From whatever the kills left in the cache, a lock gives the same lockfile
    # (so the same build inputs), and its write removes a killed writer's temp file.
    (work / "r.repro.lock").unlink(missing_ok=True)
    r = reprobuild(
        work, "lock", "--mirror", DEMO_MIRROR, "r.repro", env={"XDG_CACHE_HOME": str(cache)}
    )
    assert r.returncode == 0, r.stderr
    assert (work / "r.repro.lock").read_text() == base.lock_text
    assert temp_leftovers(work) == []


def _garbage(store: Path, rng: random.Random) -> None:
    """Unreferenced content and expired step records, all older than gc's grace."""
    with Store.open(store) as s:
        for n in range(2):
            blobs = [s.put_bytes(rng.randbytes(rng.randrange(1, 40_000))) for _ in range(10)]
            key = f"{rng.getrandbits(256):064x}"
            outputs = tuple(Output(f"o{j}", b.sha256, b.size) for j, b in enumerate(blobs[:3]))
            s.record_step(key, StepRecord("test", key, outputs=outputs))
            if n == 0:  # a build record keeps its steps, whatever their age
                s.record_build("junk", BuildRecord("junk", steps=(key,), outputs=outputs[:1]))
    old = time.time() - 7200
    for path in store.rglob("*"):
        if path.is_file() and not path.name.endswith(".lock"):
            os.utime(path, (old, old))


def crash_gc(base: Base, tmp_path: Path, runs: int, kill: Killer) -> None:
    store = tmp_path / "store"
    r = reprobuild(tmp_path, "store", "pull", str(base.remote), "--store", str(store))
    assert r.returncode == 0, r.stderr
    for _ in range(runs):
        _garbage(store, kill.rng)
        kill.run(
            tmp_path,
            "store",
            "gc",
            "--keep-days",
            "0",
            "--store",
            str(store),
        )
        sound(store)
    r = reprobuild(tmp_path, "store", "gc", "--keep-days", "0", "--store", str(store))
    assert r.returncode == 0, r.stderr
    cli_verify(store)
    with Store.open(store) as s:
        assert "f" * 64 not in s.step_keys()  # expired
        assert [b.recipe for b in s.list_builds()].count("junk") == runs
    # nothing a build needs was collected: all cached, no mirror needed
    work = copy_work(base, tmp_path)
    result = build(work, store, "--locked", "--mirror", DEAD_MIRROR)
    assert digests(result) == base.digests and result["steps"]["run"] == 0


def crash_pull(base: Base, tmp_path: Path, runs: int, kill: Killer) -> None:
    store = tmp_path / "store"
    for _ in range(runs):
        was_killed = kill.run(
            tmp_path,
            "store",
            "pull",
            str(base.remote),
            "--store",
            str(store),
        )
        sound(store)
        if not was_killed:  # start over: the next kill lands in a real transfer again
            shutil.rmtree(store)
    r = reprobuild(tmp_path, "store", "pull", str(base.remote), "--store", str(store))
    assert r.returncode == 0, r.stderr
    cli_verify(store)
    work = copy_work(base, tmp_path)
    result = build(work, store, "--locked", "--mirror", DEAD_MIRROR)
    assert digests(result) == base.digests and result["steps"]["run"] == 0


CRASHERS: dict[str, Callable[[Base, Path, int, Killer], None]] = {
    "build": crash_build,
    "lock": crash_lock,
    "gc": crash_gc,
    "pull": crash_pull,
}


@pytest.mark.parametrize("verb", sorted(RUNS))
def test_kill_9(base: Base, tmp_path: Path, verb: str) -> None:
    kill = Killer(random.Random(f"kill-9 {verb}"), SPAN[verb])
    CRASHERS[verb](base, tmp_path, RUNS[verb], kill)
    print(f"{verb}: {kill.killed} of {kill.runs} runs killed")
    assert kill.runs >= RUNS[verb] and kill.killed >= RUNS[verb] // 2  # most in real work


@pytest.mark.slow
@pytest.mark.parametrize("verb", sorted(SLOW_RUNS))
def test_kill_9_many(base: Base, tmp_path: Path, verb: str) -> None:
    kill = Killer(random.Random(f"kill-9 many {verb}"), SPAN[verb])
    CRASHERS[verb](base, tmp_path, SLOW_RUNS[verb], kill)
    assert kill.runs >= SLOW_RUNS[verb] and kill.killed >= SLOW_RUNS[verb] // 2
