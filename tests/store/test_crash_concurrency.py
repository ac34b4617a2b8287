"""Real processes: kill -9 at random moments, and two writers at once."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from reprobuild.store import Store

from .conftest import writer_cmd, writer_env


def _kill_at_random(store_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    proc = subprocess.Popen(
        writer_cmd(store_path, seed, 1000, big=rng.choice([2 << 20, 12 << 20])),
        env=writer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(rng.uniform(0.0, 0.8))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store.open(store_path) as store:
        report = store.verify()
        assert report.ok, [str(p) for p in report.problems]
    # the store stays usable: a writer that finishes cleanly after the crash
    done = subprocess.run(
        writer_cmd(store_path, seed, 4, big=1 << 20),
        env=writer_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    with Store.open(store_path) as store:
        report = store.verify()
        assert report.ok, [str(p) for p in report.problems]
        for build in store.list_builds():
            for o in build.record.outputs:
                assert store.has(o.sha256)
        store.gc(grace_seconds=0)
        assert store.verify().ok


@pytest.mark.parametrize("seed", range(10))
def test_kill_9_leaves_a_verifiable_store(tmp_path: Path, seed: int) -> None:
    _kill_at_random(tmp_path / "store", seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 60))
def test_kill_9_many(tmp_path: Path, seed: int) -> None:
    store_path = tmp_path / "store"
    for round_ in range(3):  # repeated crashes into the same store
        _kill_at_random(store_path, seed * 10 + round_)


def test_two_concurrent_writers(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    procs = [
        subprocess.Popen(
            writer_cmd(store_path, seed, 24, big=2 << 20),
            env=writer_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.splitlines()[-1] == "step 23"
    with Store.open(store_path) as store:
        assert store.verify().ok
        assert len(store.step_keys()) == 48
        builds = store.list_builds("crashy")
        assert [b.number for b in builds] == list(range(1, 17))
        history = store.log("crashy")
        assert [b.number for b in history] == list(range(16, 0, -1))
        seeds = {b.record.steps[0][:4] for b in builds}
        assert seeds == {"0001", "0002"}


def test_concurrent_writers_same_records(tmp_path: Path) -> None:
    """Both processes record identical steps: deterministic commits, no conflict."""
    store_path = tmp_path / "store"
    procs = [
        subprocess.Popen(
            writer_cmd(store_path, 5, 15, big=1 << 20),
            env=writer_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with Store.open(store_path) as store:
        assert store.verify().ok
        assert len(store.step_keys()) == 15
        assert len(store.list_builds("crashy")) == 10


def test_gc_concurrent_with_writer(tmp_path: Path) -> None:
    """gc (default grace period) while a writer records: both succeed, store sound."""
    store_path = tmp_path / "store"
    Store.open(store_path).close()
    proc = subprocess.Popen(
        writer_cmd(store_path, 3, 30, big=1 << 20),
        env=writer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with Store.open(store_path) as store:
        runs = 0
        while proc.poll() is None:
            store.gc(keep_days=0)
            runs += 1
            time.sleep(0.05)
        assert runs > 1
        _, err = proc.communicate()
        assert proc.returncode == 0, err
        store.gc(keep_days=0)
        assert store.verify().ok
        builds = store.list_builds("crashy")
        assert len(builds) == 10
        assert all(store.has(o.sha256) for b in builds for o in b.record.outputs)


def _kill_pull(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    remote = tmp_path / "remote.git"
    if not remote.exists():
        src = tmp_path / "src"
        done = subprocess.run(
            writer_cmd(src, seed, 9, big=20 << 20), env=writer_env(), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        with Store.open(src) as s:
            s.push(str(remote))
    dst = tmp_path / "dst"
    proc = subprocess.Popen(
        [*writer_cmd(dst, 0, 0)[:2], "--pull", str(dst), str(remote)],
        env=writer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(rng.uniform(0.0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store.open(dst) as store:
        report = store.verify()
        assert report.ok, [str(p) for p in report.problems]
        store.pull(str(remote))
        assert store.verify().ok
        assert len(store.list_builds("crashy")) == 3


@pytest.mark.parametrize("seed", range(3))
def test_kill_9_during_pull(tmp_path: Path, seed: int) -> None:
    _kill_pull(tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 23))
def test_kill_9_during_pull_many(tmp_path: Path, seed: int) -> None:
    _kill_pull(tmp_path, seed)
