"""Retention (gc --keep-builds/--keep-days, store rm), gc killed at every phase, migration,
and chunked push/pull refusing a corrupt chunk."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.store import BuildRecord, Output, StepRecord, Store
from reprobuild.store.maintenance import GC_PHASES
from reprobuild.store.manifest import CDC_MAX

from .conftest import ROOT, key

DATA = Path(__file__).with_name("data")
SMALL = 64 << 10


def _variant(store: Store, n: int, base: bytes, when: int) -> str:
    """A build of recipe r: one large output differing from ``base`` by one byte."""
    data = bytearray(base)
    data[len(data) // 2] = n % 256
    blob = store.put_bytes(bytes(data))
    out = Output("img", blob.sha256, blob.size)
    k = key(1000 + n)
    store.record_step(k, StepRecord("run", k, outputs=(out,)))
    return store.record_build("r", BuildRecord("r", steps=(k,), outputs=(out,)), timestamp=when)


def _disk(store: Store) -> int:
    return sum(p.stat().st_size for p in (store.path / "lfs").rglob("*") if p.is_file())


def test_keep_builds_frees_old_variants_and_keeps_history(tmp_path: Path) -> None:
    base = os.urandom(4 << 20)
    with Store.open(tmp_path / "store") as store:
        store.content.small_max = SMALL
        _variant(store, 1, base, 1_700_000_000)
        first = _disk(store)
        for n in range(2, 7):
            _variant(store, n, base, 1_700_000_000 + n)
        # chunks: a variant shares all but the chunk or two around the changed byte
        assert _disk(store) - first <= 5 * (3 * CDC_MAX + 16384)
        report = store.gc(keep_builds=1, grace_seconds=0)
        assert [b.ref for b in store.list_builds()] == ["refs/builds/r/6"]
        assert len(report.removed_refs) == 10  # 5 builds and the 5 steps only they listed
        assert _disk(store) <= 1.15 * first
        assert store.verify().ok
        assert len(store.log("r")) == 6  # history (commits) stays; content of old builds goes
        assert store.read_bytes(store.read_build("r").record.outputs[0].sha256)


def test_keep_days_with_keep_builds_and_rm(tmp_path: Path) -> None:
    import time

    with Store.open(tmp_path / "store") as store:
        now = int(time.time())
        for n, age in enumerate((40, 20, 1), start=1):
            _variant(store, n, b"x" * 100, now - age * 86400)
        store.gc(keep_builds=1, keep_days=30, grace_seconds=0)
        assert [b.number for b in store.list_builds()] == [2, 3]
        store.gc(keep_days=0, grace_seconds=0)  # without --keep-builds, builds are kept
        assert [b.number for b in store.list_builds()] == [2, 3]
        assert store.remove_build("r/2") == "refs/builds/r/2"
        with pytest.raises(StoreError):
            store.remove_build("r/2")
        store.gc(grace_seconds=0)
        assert [b.number for b in store.list_builds()] == [3] and store.verify().ok


_GC = """
import sys
from reprobuild.store import Store
with Store.open(sys.argv[1]) as s:
    s.gc(keep_builds=1, grace_seconds=0)
"""


@pytest.mark.parametrize("phase", GC_PHASES)
def test_gc_killed_at_every_phase_leaves_a_consistent_store(tmp_path: Path, phase: str) -> None:
    base = os.urandom(600 << 10)
    path = tmp_path / "store"
    with Store.open(path) as store:
        store.content.small_max = SMALL
        for n in range(1, 4):
            _variant(store, n, base, 1_700_000_000 + n)
        store.put_bytes(os.urandom(300 << 10))  # unreferenced garbage
    env = dict(os.environ, REPROBUILD_GC_KILL_AT=phase, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", _GC, str(path)], env=env, capture_output=True)
    assert r.returncode == -9, r.stderr
    with Store.open(path) as store:
        report = store.verify()
        assert report.ok, [str(p) for p in report.problems]
        for b in store.list_builds():
            assert store.read_bytes(b.record.outputs[0].sha256)
        store.gc(keep_builds=1, grace_seconds=0)  # the next gc finishes the job
        assert [b.number for b in store.list_builds()] == [3]
        assert store.verify().ok
        assert len(list(store.content.chunks.iter_manifests())) == 1


def _unpack_v1(tmp_path: Path) -> tuple[Path, Path]:
    with tarfile.open(DATA / "store-v1.tar.gz") as t:
        from reprobuild.tarextract import extract_all

        extract_all(t, tmp_path)
    return tmp_path / "store", tmp_path / "remote.git"


def test_format_1_store_is_read_then_migrated(tmp_path: Path) -> None:
    store_dir, _ = _unpack_v1(tmp_path)
    assert (store_dir / "reprobuild" / "format").read_text().strip() == "1"
    with Store.open(store_dir) as store:
        info = store.read_build("demo/1")
        big = info.record.outputs[0]
        assert store.is_whole(big.sha256)  # read as it is, no migration on read
        data = store.read_bytes(big.sha256)
        assert store.verify().ok
        report = store.migrate()
        assert report.from_format == "1" and report.objects == 2
        assert not store.is_whole(big.sha256) and store.read_bytes(big.sha256) == data
        assert store.read_build("demo/1").commit == info.commit  # refs unchanged
        assert store.verify().ok
    assert (store_dir / "reprobuild" / "format").read_text().strip() == "2"


def test_format_1_store_migrates_on_first_write_and_old_remote_pulls(tmp_path: Path) -> None:
    store_dir, remote = _unpack_v1(tmp_path)
    with Store.open(store_dir) as store:
        store.put_bytes(b"a first write")
        assert (store_dir / "reprobuild" / "format").read_text().strip() == "2"
        assert store.verify().ok
    with Store.open(tmp_path / "fresh") as fresh:  # a remote of format-1 carriers
        fresh.pull(str(remote))
        info = fresh.read_build("demo/1")
        assert fresh.verify().ok
        assert not fresh.is_whole(info.record.outputs[0].sha256)  # chunked on the way in


def test_chunked_push_sends_only_missing_chunks(tmp_path: Path) -> None:
    base = os.urandom(2 << 20)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    with Store.open(tmp_path / "store") as store:
        store.content.small_max = SMALL
        _variant(store, 1, base, 1)
        first = store.push(str(remote))
        assert first.sent_bytes >= len(base)
        _variant(store, 2, base, 2)
        second = store.push(str(remote))
        assert 0 < second.sent_bytes < len(base) // 10
    fsck = subprocess.run(
        ["git", "--git-dir", str(remote), "fsck", "--strict"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stderr
    with Store.open(tmp_path / "other") as other:
        other.pull(str(remote), refs=["r/2"])
        assert [b.number for b in other.list_builds()] == [2]  # only what was asked
        assert other.verify().ok


def test_corrupt_chunk_refused_by_push_and_by_pull(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    with Store.open(tmp_path / "store") as store:
        store.content.small_max = SMALL
        _variant(store, 1, os.urandom(400 << 10), 1)
        store.push(str(remote))
        _, path = next(iter(store.content.chunks.iter_chunks()))
        os.chmod(path, 0o644)
        body = bytearray(path.read_bytes())
        body[-1] ^= 0xFF
        path.write_bytes(bytes(body))
        with pytest.raises(IntegrityError):
            store.push(str(tmp_path / "other.git"))
    # damage one chunk blob on the remote: the pull refuses the content and its records
    from dulwich.objects import Blob as GitBlob
    from dulwich.repo import Repo

    with Repo(str(remote)) as r:
        ref = next(k for k in r.refs.allkeys() if k.startswith(b"refs/content/"))
        tree = r[r[r.refs[ref]].tree]
        name, _mode, _sha = next(e for e in tree.items() if e.path.startswith(b"c-"))
        bad = GitBlob.from_string(b"not the chunk")
        r.object_store.add_object(bad)
        tree[name] = (0o100644, bad.id)
        r.object_store.add_object(tree)
        commit = r[r.refs[ref]]
        commit.tree = tree.id
        r.object_store.add_object(commit)
        r.refs[ref] = commit.id
    with Store.open(tmp_path / "other") as other:
        with pytest.raises((StoreError, IntegrityError)):
            other.pull(str(remote))
        assert other.list_builds() == [] and other.step_keys() == []
        assert other.verify().ok
