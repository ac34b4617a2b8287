"""verify() finds damage naming the object; gc() keeps what refs reach."""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

from reprobuild.store import BuildRecord, Output, Store

from .conftest import key, step_with


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _subjects(store: Store) -> list[str]:
    return [str(p) for p in store.verify().problems]


def test_clean_store_verifies(store: Store) -> None:
    step_with(store, key(1), b"a", b"b")
    report = store.verify()
    assert report.ok and report.problems == ()
    assert report.content_objects == 2 and report.refs == 1


def test_tampered_content_named(store: Store) -> None:
    rec = step_with(store, key(1), b"precious")
    p = store.path_of(rec.outputs[0].sha256)
    os.chmod(p, 0o644)
    p.write_bytes(b"Precious")
    problems = store.verify().problems
    assert len(problems) == 1
    assert rec.outputs[0].sha256 in problems[0].subject
    assert "corrupt" in problems[0].message


def test_missing_content_named_with_ref(store: Store) -> None:
    rec = step_with(store, key(1), b"gone soon")
    store.content.remove(rec.outputs[0].sha256)
    (problem,) = store.verify().problems
    assert rec.outputs[0].sha256 in problem.subject
    assert "refs/steps/" + key(1) in problem.message


def test_stray_files_reported_tmp_ignored(store: Store) -> None:
    (store.path / "lfs" / "objects" / "zz").mkdir()
    (store.path / "lfs" / "objects" / "zz" / "junk").write_bytes(b"x")
    (store.path / "lfs" / "tmp" / "incoming-123").write_bytes(b"half written")
    problems = store.verify().problems
    assert len(problems) == 1 and "stray" in problems[0].message


def test_dangling_ref_and_corrupt_git_object(store: Store) -> None:
    step_with(store, key(1), b"x")
    ref = store.path / "refs" / "steps" / key(2)
    ref.write_text("1" * 40 + "\n")
    subjects = _subjects(store)
    assert any("refs/steps/" + key(2) in s for s in subjects), subjects
    ref.unlink()
    commit = store.repo.refs[b"refs/steps/" + key(1).encode()].decode()
    loose = store.path / "objects" / commit[:2] / commit[2:]
    os.chmod(loose, 0o644)
    raw = zlib.decompress(loose.read_bytes()).replace(b"test", b"tost")
    loose.write_bytes(zlib.compress(raw))
    subjects = _subjects(store)
    assert subjects and any(commit in s for s in subjects), subjects


def test_gc_keeps_reachable_removes_unreachable(store: Store) -> None:
    rec = step_with(store, key(1), b"kept")
    garbage = store.put_bytes(b"garbage")
    young = store.put_bytes(b"young garbage")
    _age(store.path_of(garbage.sha256), 7200)
    _age(store.path_of(rec.outputs[0].sha256), 7200)
    (store.path / "lfs" / "tmp" / "incoming-dead").write_bytes(b"x")
    _age(store.path / "lfs" / "tmp" / "incoming-dead", 7200)
    report = store.gc()
    assert report.removed_content == 1 and report.freed_bytes == len(b"garbage")
    assert report.kept_young == 1
    assert store.has(rec.outputs[0].sha256) and store.has(young.sha256)
    assert not store.has(garbage.sha256)
    assert list((store.path / "lfs" / "tmp").iterdir()) == []
    assert store.lookup_step(key(1)) == rec
    assert store.verify().ok
    store.gc(grace_seconds=0)
    assert not store.has(young.sha256)
    assert store.has(rec.outputs[0].sha256)


def test_gc_removes_unreachable_git_objects(store: Store) -> None:
    a = step_with(store, key(1), b"a")
    b = step_with(store, key(2), b"b")
    commit_b = store.repo.refs[b"refs/steps/" + key(2).encode()]
    assert store._remove_ref(b"refs/steps/" + key(2).encode(), commit_b)
    report = store.gc(grace_seconds=0)
    assert report.removed_content == 1 and report.removed_git_objects >= 3
    assert commit_b not in store.repo.object_store
    assert not store.has(b.outputs[0].sha256) and store.has(a.outputs[0].sha256)
    assert store.verify().ok


def test_gc_keep_days_expires_unused_steps_but_not_build_steps(store: Store) -> None:
    old_unused = step_with(store, key(1), b"old unused")
    old_used = step_with(store, key(2), b"old but in a build")
    fresh = step_with(store, key(3), b"fresh")
    out = old_used.outputs[0]
    store.record_build("r", BuildRecord(recipe="r", steps=(key(2),), outputs=(out,)))
    for k in (1, 2):
        _age(store.path / "reprobuild" / "stamps" / key(k), 10 * 86400)
    report = store.gc(keep_days=7, grace_seconds=0)
    assert report.removed_refs == ("refs/steps/" + key(1),)
    assert store.lookup_step(key(1)) is None
    assert not store.has(old_unused.outputs[0].sha256)
    assert store.lookup_step(key(2)) == old_used
    assert store.lookup_step(key(3)) == fresh
    assert store.verify().ok


def test_lookup_refreshes_stamp(store: Store) -> None:
    step_with(store, key(1), b"used")
    stamp = store.path / "reprobuild" / "stamps" / key(1)
    _age(stamp, 10 * 86400)
    assert store.lookup_step(key(1)) is not None
    assert store.gc(keep_days=7).removed_refs == ()


def test_gc_after_pack_repacks_without_dead_objects(store: Store) -> None:
    step_with(store, key(1), b"a")
    step_with(store, key(2), b"b")
    store.repo.object_store.pack_loose_objects()
    for pack in store.repo.object_store.packs:
        _age(Path(pack._data_path), 7200)
    dead = store.repo.refs[b"refs/steps/" + key(2).encode()]
    store._remove_ref(b"refs/steps/" + key(2).encode(), dead)
    store.gc(grace_seconds=60)
    store.repo.object_store._update_pack_cache()
    assert dead not in store.repo.object_store
    assert store.verify().ok
    assert store.lookup_step(key(1)) is not None


def test_outputs_media_type_round_trip(store: Store) -> None:
    b = store.put_bytes(b"{}")
    rec = store.record_build(
        "m",
        BuildRecord(
            recipe="m",
            outputs=(Output("oci", b.sha256, 2, "application/vnd.oci.image.index.v1+json"),),
        ),
    )
    assert (
        store.read_build(rec).record.outputs[0].media_type
        == "application/vnd.oci.image.index.v1+json"
    )
