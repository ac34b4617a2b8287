"""Records from a remote are checked before any ref of this store points at them.

A remote is not trusted: a ``refs/steps/KEY`` there may point at anything.
A step record is accepted only if its git objects are exactly those this
store would write for it (step commits are canonical: fixed metadata, so the
commit id is a function of the record) and it is the record of step KEY. A
build record must parse, name the recipe of its ref, and point at pointer
trees that match it; so must every earlier build of its history. Anything
else is refused, with the reason, and never becomes a ref: ``store ls`` and
``store verify`` never see it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dulwich.objects import Blob as GitBlob
from dulwich.objects import Commit, ObjectID, ShaFile, Tree

from reprobuild.errors import StoreError
from reprobuild.store.records import (
    BuildRecord,
    Output,
    StepRecord,
    pointer_bytes,
    tree_entry_name,
)

IDENTITY = b"reprobuild <reprobuild@localhost>"
MODE_FILE = 0o100644
MODE_TREE = 0o040000
MAX_RECORD = 16 << 20  # a record.json or build.json larger than this is refused
MAX_HISTORY = 100_000  # builds of one recipe walked back through parents
_BUILD_REF = re.compile(rb"refs/builds/([^/]+)/(\d+)")

Get = Callable[[ObjectID], Any]


def pointer_tree(outputs: tuple[Output, ...]) -> list[ShaFile]:
    """The pointer blobs and the tree listing them (tree last)."""
    objects: list[ShaFile] = []
    tree = Tree()
    for o in outputs:
        blob = GitBlob.from_string(pointer_bytes(o.blob))
        objects.append(blob)
        tree.add(tree_entry_name(o.name), MODE_FILE, blob.id)
    objects.append(tree)
    return objects


def step_objects(record: StepRecord) -> list[ShaFile]:
    """Every git object of a step's record, as the store writes them (commit last)."""
    blob = GitBlob.from_string(record.to_bytes())
    objects: list[ShaFile] = [blob]
    tree = Tree()
    tree.add(b"record.json", MODE_FILE, blob.id)
    if record.outputs:
        pointers = pointer_tree(record.outputs)
        objects += pointers
        tree.add(b"outputs", MODE_TREE, pointers[-1].id)
    objects.append(tree)
    commit = Commit()
    commit.tree = tree.id
    commit.parents = []
    commit.author = commit.committer = IDENTITY
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = f"{record.kind} {record.key}\n".encode()
    objects.append(commit)
    return objects


def _object(get: Get, sha: ObjectID, kind: type, what: str) -> Any:
    try:
        obj = get(sha)
    except KeyError:
        raise StoreError(f"{what} is missing (object {sha.decode()})") from None
    except Exception as exc:  # corrupt zlib, a bad header
        raise StoreError(f"{what} is unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, kind):
        raise StoreError(f"{what} is not a git {kind.__name__.lower()}")
    return obj


def _file(get: Get, tree: Tree, name: bytes, what: str) -> bytes:
    try:
        mode, sha = tree[name]
    except KeyError:
        raise StoreError(f"{what} has no {name.decode()}") from None
    if mode != MODE_FILE:
        raise StoreError(f"{what}: {name.decode()} is not a file")
    blob = _object(get, sha, GitBlob, f"{what}: {name.decode()}")
    data = bytes(blob.as_raw_string())
    if len(data) > MAX_RECORD:
        raise StoreError(f"{what}: {name.decode()} is too large ({len(data)} bytes)")
    return data


def check_step(get: Get, ref: bytes, sha: ObjectID) -> tuple[StepRecord, list[ShaFile]]:
    """The record ``ref`` (``refs/steps/KEY``) points at, and its canonical objects."""
    key = ref.rsplit(b"/", 1)[-1].decode(errors="replace")
    what = f"the record of step {key}"
    commit = _object(get, sha, Commit, what)
    tree = _object(get, commit.tree, Tree, what)
    record = StepRecord.from_bytes(_file(get, tree, b"record.json", what))
    if record.key != key:
        raise StoreError(f"{what} is the record of step {record.key}")
    objects = step_objects(record)
    if objects[-1].id != sha:
        raise StoreError(f"{what} is not in the form reprobuild writes (extra or altered objects)")
    return record, objects


def check_build(get: Get, ref: bytes, sha: ObjectID) -> tuple[BuildRecord, list[ShaFile]]:
    """The build ``ref`` points at and its history, checked; returns it and their objects."""
    m = _BUILD_REF.fullmatch(ref)
    if m is None:
        raise StoreError(f"{ref.decode(errors='replace')} is not a build ref")
    recipe = m.group(1).decode()
    objects: list[ShaFile] = []
    first: BuildRecord | None = None
    todo = [sha]
    seen: set[ObjectID] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if len(seen) > MAX_HISTORY:
            raise StoreError(f"the history of {ref.decode()} is longer than {MAX_HISTORY} builds")
        what = f"build {current.decode()} of {ref.decode()}"
        commit = _object(get, current, Commit, what)
        if not commit.message.startswith(f"build {recipe} #".encode()):
            raise StoreError(f"{what} is not a build of {recipe}")
        tree = _object(get, commit.tree, Tree, what)
        record = BuildRecord.from_bytes(_file(get, tree, b"build.json", what))
        if record.recipe != recipe:
            raise StoreError(f"{what} is a build of {record.recipe}")
        expected = Tree()
        blob = GitBlob.from_string(record.to_bytes())
        expected.add(b"build.json", MODE_FILE, blob.id)
        made: list[ShaFile] = [blob]
        for name, outputs in ((b"outputs", record.outputs), (b"sources", record.sources)):
            if outputs:
                pointers = pointer_tree(outputs)
                made += pointers
                expected.add(name, MODE_TREE, pointers[-1].id)
        if expected.id != tree.id:
            raise StoreError(f"{what} does not match its build.json")
        objects += [*made, expected, commit]
        first = first or record
        todo.extend(commit.parents)
    assert first is not None
    return first, objects


__all__ = ["check_build", "check_step", "pointer_tree", "step_objects"]
