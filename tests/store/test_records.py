"""Step and build records: refs, deterministic commits, history."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from reprobuild.errors import StoreError
from reprobuild.store import BuildRecord, ContentMissing, Output, StepRecord, Store

from .conftest import key, step_with


def test_record_and_lookup_step(store: Store) -> None:
    rec = step_with(store, key(1), b"one", b"two")
    assert store.lookup_step(key(1)) == rec
    assert store.lookup_step(key(2)) is None
    assert store.step_keys() == [key(1)]
    commit = store.repo.refs[b"refs/steps/" + key(1).encode()]
    tree = store.repo[store.repo[commit].tree]
    names = sorted(e.path for e in tree.items())
    assert names == [b"outputs", b"record.json"]
    data = json.loads(store.repo[tree[b"record.json"][1]].data)
    assert data["kind"] == "test" and data["key"] == key(1)
    assert data["outputs"][0]["sha256"] == rec.outputs[0].sha256
    pointer = store.repo[store.repo[tree[b"outputs"][1]][b"out0"][1]].data
    assert pointer == (
        b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:" + rec.outputs[0].sha256.encode() + b"\nsize 3\n"
    )


def test_step_commit_ids_are_deterministic(store: Store, other: Store) -> None:
    step_with(store, key(7), b"same bytes")
    step_with(other, key(7), b"same bytes")
    ref = b"refs/steps/" + key(7).encode()
    assert store.repo.refs[ref] == other.repo.refs[ref]


def test_first_writer_wins_unless_replace(store: Store) -> None:
    first = step_with(store, key(3), b"first")
    b = store.put_bytes(b"second")
    second = StepRecord(kind="test", key=key(3), outputs=(Output("out0", b.sha256, b.size),))
    assert store.record_step(key(3), second) == first
    assert store.lookup_step(key(3)) == first
    assert store.record_step(key(3), second, replace=True) == second
    assert store.lookup_step(key(3)) == second


def test_record_refuses_missing_content(store: Store) -> None:
    rec = StepRecord(kind="x", key=key(4), outputs=(Output("o", "a" * 64, 3),))
    with pytest.raises(ContentMissing):
        store.record_step(key(4), rec)
    b = store.put_bytes(b"abc")
    with pytest.raises(StoreError, match="3 bytes"):
        store.record_step(
            key(4), StepRecord(kind="x", key=key(4), outputs=(Output("o", b.sha256, 4),))
        )
    assert store.lookup_step(key(4)) is None


def test_invalid_keys_and_names(store: Store) -> None:
    for bad in ("", "../x", "a/b", "x.lock", "a..b", "-x"):
        with pytest.raises(StoreError):
            StepRecord(kind="x", key=bad)
    with pytest.raises(StoreError):
        store.record_step(key(1), StepRecord(kind="x", key=key(2)))


def test_lookup_is_none_when_content_gone(store: Store) -> None:
    rec = step_with(store, key(5), b"payload")
    store.content.remove(rec.outputs[0].sha256)
    assert store.lookup_step(key(5)) is None


def test_output_names_with_slashes(store: Store) -> None:
    b = store.put_bytes(b"layer")
    rec = StepRecord(kind="oci", key=key(6), outputs=(Output("blobs/sha256/ab", b.sha256, b.size),))
    store.record_step(key(6), rec)
    assert store.lookup_step(key(6)) == rec
    assert store.verify().ok


def _build(store: Store, recipe: str, payload: bytes, steps: tuple[str, ...] = ()) -> str:
    b = store.put_bytes(payload)
    lock = store.put_bytes(b'{"lock": true}\n')
    return store.record_build(
        recipe,
        BuildRecord(
            recipe=recipe,
            steps=steps,
            outputs=(Output("disk", b.sha256, b.size, "application/x-raw-disk-image"),),
            sources=(Output("lockfile", lock.sha256, lock.size, "application/json"),),
            versions={"reprobuild": "0.1.0"},
        ),
        timestamp=1_700_000_000,
    )


def test_builds_are_numbered_history(store: Store) -> None:
    assert _build(store, "deb", b"v1") == "refs/builds/deb/1"
    assert _build(store, "deb", b"v2") == "refs/builds/deb/2"
    assert _build(store, "arch", b"a1") == "refs/builds/arch/1"
    assert _build(store, "deb", b"v3") == "refs/builds/deb/3"
    builds = store.list_builds()
    assert [(b.recipe, b.number) for b in builds] == [
        ("arch", 1),
        ("deb", 1),
        ("deb", 2),
        ("deb", 3),
    ]
    assert [b.number for b in store.list_builds("deb")] == [1, 2, 3]
    log = store.log("refs/builds/deb/3")
    assert [e.ref for e in log] == ["refs/builds/deb/3", "refs/builds/deb/2", "refs/builds/deb/1"]
    assert all(e.time == 1_700_000_000 for e in log)
    assert store.log("deb") == log
    assert store.read_build("deb/2").record.outputs[0].size == 2
    assert store.resolve_build("deb") == "refs/builds/deb/3"
    with pytest.raises(StoreError):
        store.resolve_build("nope")
    first = store.repo[store.repo.refs[b"refs/builds/deb/1"]]
    assert first.parents == []
    third = store.repo[store.repo.refs[b"refs/builds/deb/3"]]
    assert third.parents == [store.repo.refs[b"refs/builds/deb/2"]]


def test_ls(store: Store) -> None:
    step_with(store, key(1), b"12345")
    _build(store, "deb", b"abc")
    entries = store.ls()
    assert [(e.kind, e.ref, e.name, e.size) for e in entries] == [
        ("build", "refs/builds/deb/1", "deb", 3),
        ("step", "refs/steps/" + key(1), "test", 5),
    ]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_reads_the_store(store: Store) -> None:
    step_with(store, key(1), b"x")
    _build(store, "deb", b"v1")
    _build(store, "deb", b"v2")
    git = ["git", "--git-dir", str(store.path)]
    log = subprocess.run(
        [*git, "log", "--format=%s", "refs/builds/deb/2"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.splitlines() == ["build deb #2", "build deb #1"]
    fsck = subprocess.run(
        [*git, "fsck", "--strict", "--no-dangling"], capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stderr
    show = subprocess.run(
        [*git, "show", "refs/builds/deb/2:build.json"], capture_output=True, text=True, check=True
    )
    assert json.loads(show.stdout)["recipe"] == "deb"


def test_store_open_is_idempotent_and_racy_create_is_safe(tmp_path: Path) -> None:
    p = tmp_path / "deep" / "store"
    a = Store.open(p)
    b = Store.open(p)
    assert a.path == b.path
    a.close()
    b.close()
    assert sorted(x.name for x in p.parent.iterdir()) == ["store"]


def test_stale_ref_lock_from_killed_process_is_cleared(store: Store) -> None:
    (store.path / "refs" / "steps").mkdir(parents=True, exist_ok=True)
    (store.path / "refs" / "steps" / (key(1) + ".lock")).write_text("")
    (store.path / "refs" / "builds" / "deb").mkdir(parents=True)
    (store.path / "refs" / "builds" / "deb" / "1.lock").write_text("")
    assert store.verify().ok
    rec = step_with(store, key(1), b"x")
    assert store.lookup_step(key(1)) == rec
    assert _build(store, "deb", b"v1") == "refs/builds/deb/1"
    assert store.verify().ok


def test_incomplete_record_is_replaced(store: Store) -> None:
    old = step_with(store, key(1), b"lost")
    store.content.remove(old.outputs[0].sha256)
    new = step_with(store, key(1), b"rebuilt")
    assert store.lookup_step(key(1)) == new
