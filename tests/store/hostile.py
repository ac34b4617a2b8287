"""Remotes another party controls, made by hand with dulwich: what reprobuild must
refuse (junk records, size bombs) or handle within bounds (a 1 GiB object)."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from dulwich.objects import Blob as GitBlob
from dulwich.objects import Commit, ObjectID, ShaFile, Tree
from dulwich.repo import Repo

from reprobuild.store import Output, StepRecord
from reprobuild.store.carriers import PIECE_SIZE, _commit, carrier_ref
from reprobuild.store.records import Blob
from reprobuild.store.validate import step_objects


def bare(path: Path) -> Repo:
    path.parent.mkdir(parents=True, exist_ok=True)
    return Repo.init_bare(str(path), mkdir=True)


def add_step(repo: Repo, record: StepRecord, ref_key: str | None = None) -> None:
    """A canonical step record under ``refs/steps/<ref_key or its key>``."""
    objects = step_objects(record)
    for obj in objects:
        repo.object_store.add_object(obj)
    repo.refs[b"refs/steps/" + (ref_key or record.key).encode()] = objects[-1].id


def add_junk_step(repo: Repo, key: str, record_json: bytes) -> None:
    """``refs/steps/KEY`` pointing at a commit whose record.json is ``record_json``."""
    blob = GitBlob.from_string(record_json)
    _commit_tree(repo, b"refs/steps/" + key.encode(), [(b"record.json", blob)], b"junk\n")


def add_junk_build(repo: Repo, recipe: str, build_json: bytes) -> None:
    blob = GitBlob.from_string(build_json)
    message = f"build {recipe} #1\n".encode()
    _commit_tree(repo, f"refs/builds/{recipe}/1".encode(), [(b"build.json", blob)], message)


def _commit_tree(repo: Repo, ref: bytes, files: list[tuple[bytes, ShaFile]], msg: bytes) -> None:
    tree = Tree()
    for name, obj in files:
        repo.object_store.add_object(obj)
        tree.add(name, 0o100644, obj.id)
    commit = Commit()
    commit.tree, commit.parents = tree.id, []
    commit.author = commit.committer = b"x <x@x>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = msg
    repo.object_store.add_object(tree)
    repo.object_store.add_object(commit)
    repo.refs[ref] = commit.id


def piece(i: int) -> bytes:
    """8 MiB piece ``i`` of a large object: zeros with a counter every 64 KiB, so
    no two pieces (nor chunks) are alike, yet it compresses to almost nothing."""
    data = bytearray(PIECE_SIZE)
    for j in range(0, PIECE_SIZE, 1 << 16):
        data[j : j + 16] = b"%016d" % (i * PIECE_SIZE + j)
    return bytes(data)


def add_large_step(repo: Repo, key: str, pieces: int) -> Output:
    """A step whose one output is ``pieces`` 8 MiB pieces, in a format-1 carrier (how
    a remote written before chunks, or a whole package, holds its content)."""
    h = hashlib.sha256()
    tree = Tree()
    for i in range(pieces):
        data = piece(i)
        h.update(data)
        tree.add(b"%07d" % i, 0o100644, add_loose(repo, data))
    out = Blob(h.hexdigest(), pieces * PIECE_SIZE)
    commit = _commit(tree, out)
    repo.object_store.add_object(tree)
    repo.object_store.add_object(commit)
    repo.refs[carrier_ref(out.sha256)] = commit.id
    output = Output("big", out.sha256, out.size)
    add_step(repo, StepRecord(kind="big", key=key, outputs=(output,)))
    return output


def add_piece_bomb(repo: Repo, key: str, claimed: int, pieces: int) -> None:
    """A step claiming ``claimed`` bytes whose carrier repeats one zero piece
    ``pieces`` times: a few kilobytes on the remote, gigabytes once written out."""
    zero = GitBlob.from_string(bytes(PIECE_SIZE))
    repo.object_store.add_object(zero)
    tree = Tree()
    for i in range(pieces):
        tree.add(b"%07d" % i, 0o100644, zero.id)
    sha = hashlib.sha256(b"bomb").hexdigest()
    commit = _commit(tree, Blob(sha, claimed))
    repo.object_store.add_object(tree)
    repo.object_store.add_object(commit)
    repo.refs[carrier_ref(sha)] = commit.id
    add_step(repo, StepRecord(kind="bomb", key=key, outputs=(Output("o", sha, claimed),)))


def add_loose(repo: Repo, data: bytes) -> ObjectID:
    """A loose git blob, deflated at level 1 (dulwich's default level is slow)."""
    header = b"blob %d\0" % len(data)
    hexsha = hashlib.sha1(header + data).hexdigest()
    path = Path(repo.object_store.path) / hexsha[:2] / hexsha[2:]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(zlib.compress(header + data, 1))
    return ObjectID(hexsha.encode())


def add_loose_zero_blob(repo: Repo, size: int) -> bytes:
    """A loose git blob of ``size`` zero bytes, written streaming (never in memory);
    returns its id. Its zlib stream is about a thousandth of its size."""
    header = b"blob %d\0" % size
    sha1 = hashlib.sha1(header)
    z = zlib.compressobj(1)
    zero = bytes(1 << 20)
    parts = [z.compress(header)]
    for _ in range(size >> 20):
        sha1.update(zero)
        parts.append(z.compress(zero))
    parts.append(z.flush())
    hexsha = sha1.hexdigest()
    path = Path(repo.object_store.path) / hexsha[:2] / hexsha[2:]
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"".join(parts))
    return hexsha.encode()


def add_oversized_record(repo: Repo, key: str, size: int) -> None:
    """``refs/steps/KEY`` whose record.json is a ``size``-byte blob of zeros."""
    blob_id = add_loose_zero_blob(repo, size)
    tree = Tree()
    tree.add(b"record.json", 0o100644, blob_id)
    commit = Commit()
    commit.tree, commit.parents = tree.id, []
    commit.author = commit.committer = b"x <x@x>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"bomb\n"
    repo.object_store.add_object(tree)
    repo.object_store.add_object(commit)
    repo.refs[b"refs/steps/" + key.encode()] = commit.id


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server on loopback that accepts every connection and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
