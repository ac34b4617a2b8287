"""Content on a git remote: one *carrier* commit per content object.

``refs/content/sha256/<hex>`` points to a commit with fixed metadata whose tree
holds the content. Two layouts, both plain git:

* format 2 (chunked content)::

      manifest            the manifest (manifest.py): the content as chunks
      c-<sha256>          one blob per distinct chunk, its bytes uncompressed

  The same chunk is the same git blob in every carrier, so git stores it once
  on the remote, a push sends only the chunk blobs the remote lacks, and a
  fetch that names the carriers of content it already has as ``have`` gets
  only the others. The carrier's id is a pure function of the manifest, so
  comparing a remote ref with the id computed here tells whether the remote
  holds exactly this layout (and therefore every chunk blob it lists).
* format 1 (small content, and remotes written before chunks)::

      0000000, 0000001 ...   the bytes in 8 MiB pieces, in order

Whatever a carrier says is checked on the way in: each chunk against the
sha256 in its name, the manifest against the content's sha256, and the whole
content's sha256 and size before anything is published locally.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dulwich.objects import Blob as GitBlob
from dulwich.objects import Commit, ObjectID, Tree

from reprobuild.errors import IntegrityError
from reprobuild.store.content import _ManifestRaw
from reprobuild.store.manifest import ChunkRef, Manifest
from reprobuild.store.records import Blob

if TYPE_CHECKING:
    from reprobuild.store.core import Store

CARRIER_PREFIX = b"refs/content/sha256/"
PIECE_SIZE = 8 << 20
MANIFEST_ENTRY = b"manifest"
_CHUNK_ENTRY = re.compile(rb"c-([0-9a-f]{64})")
_IDENTITY = b"reprobuild <reprobuild@localhost>"


@dataclass
class Carrier:
    """A carrier's git objects (commit, tree, manifest blob) and the chunks it lists."""

    blob: Blob
    commit: Commit
    tree: Tree
    extra: list[GitBlob]  # the manifest blob (format 2)
    chunks: dict[str, ChunkRef]  # by sha256 (format 2); empty for format 1
    pieces: list[ObjectID]  # format 1: piece blob ids, in order


def carrier_ref(sha256: str) -> bytes:
    return CARRIER_PREFIX + sha256.encode()


def _commit(tree: Tree, blob: Blob) -> Commit:
    commit = Commit()
    commit.tree = tree.id
    commit.parents = []
    commit.author = commit.committer = _IDENTITY
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = f"content sha256:{blob.sha256} size {blob.size}\n".encode()
    return commit


def chunked_carrier(manifest: Manifest) -> Carrier:
    """The format-2 carrier of chunked content (reads no chunk: ids are in the manifest)."""
    blob = Blob(manifest.sha256, manifest.size)
    mblob = GitBlob.from_string(manifest.to_bytes())
    tree = Tree()
    tree.add(MANIFEST_ENTRY, 0o100644, mblob.id)
    chunks = manifest.unique_chunks()
    for sha, ref in chunks.items():
        tree.add(b"c-" + sha.encode(), 0o100644, ObjectID(ref.git.encode()))
    return Carrier(blob, _commit(tree, blob), tree, [mblob], chunks, [])


def _git_blob_id(data: bytes) -> ObjectID:
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return ObjectID(h.hexdigest().encode("ascii"))


def whole_carrier(store: Store, blob: Blob) -> Carrier:
    """The format-1 carrier of whole content (one read to name its pieces and check it)."""
    h = hashlib.sha256()
    ids: list[ObjectID] = []
    size = 0
    with store.open_blob(blob.sha256) as f:  # raises IntegrityError on corrupt bytes
        while piece := f.read(PIECE_SIZE):
            h.update(piece)
            size += len(piece)
            ids.append(_git_blob_id(piece))
    if h.hexdigest() != blob.sha256 or size != blob.size:
        raise IntegrityError(
            f"refusing to push corrupt content sha256:{blob.sha256}",
            hint="run `reprobuild store verify`",
        )
    tree = Tree()
    for i, sha in enumerate(ids):
        tree.add(b"%07d" % i, 0o100644, sha)
    return Carrier(blob, _commit(tree, blob), tree, [], {}, ids)


def local_carrier(store: Store, blob: Blob) -> Carrier:
    manifest = store.content.chunks.manifest(blob.sha256)
    if manifest is not None and not store.content.is_whole(blob.sha256):
        return chunked_carrier(manifest)
    return whole_carrier(store, blob)


def carrier_id_if_chunked(store: Store, sha256: str) -> ObjectID | None:
    """The format-2 carrier id of local chunked content (None if whole or absent)."""
    try:
        manifest = store.content.chunks.manifest(sha256)
    except IntegrityError:
        return None
    if manifest is None:
        return None
    return chunked_carrier(manifest).commit.id


# ------------------------------------------------------------------ import


def import_carrier(
    store: Store, blob: Blob, commit_id: ObjectID, get: Callable[[ObjectID], Any], where: str
) -> None:
    """Bring the content a remote carrier holds into the store, checking everything.

    ``get`` reads a git object of the remote (or of a scratch repository that
    fetched the carrier); chunk blobs already present locally are not read.
    """
    try:
        commit = get(commit_id)
        tree = get(commit.tree) if isinstance(commit, Commit) else None
    except KeyError:
        raise IntegrityError(
            f"content carrier for sha256:{blob.sha256} is incomplete on {where}"
        ) from None
    if not isinstance(tree, Tree):
        raise IntegrityError(f"content carrier for sha256:{blob.sha256} is malformed on {where}")
    entries = {e.path: e.sha for e in tree.items()}
    if MANIFEST_ENTRY in entries:
        _import_chunked(store, blob, entries, get, where)
    else:
        pieces = [entries[name] for name in sorted(entries)]
        if len(pieces) != -(-blob.size // PIECE_SIZE):  # a size bomb repeats one piece
            raise IntegrityError(
                f"carrier of sha256:{blob.sha256} on {where} has {len(pieces)} pieces, "
                f"not the {-(-blob.size // PIECE_SIZE)} that {blob.size} bytes make"
            )
        with io.BufferedReader(_PieceStream(get, pieces), PIECE_SIZE) as stream:
            store.content.put_stream(stream, expected_sha256=blob.sha256, expected_size=blob.size)


def _import_chunked(
    store: Store,
    blob: Blob,
    entries: dict[bytes, ObjectID],
    get: Callable[[ObjectID], Any],
    where: str,
) -> None:
    raw = _read_blob(get, entries[MANIFEST_ENTRY], blob, where)
    manifest = Manifest.from_bytes(raw, expect=blob.sha256)
    if manifest.size != blob.size:
        raise IntegrityError(f"carrier of sha256:{blob.sha256} on {where} has the wrong size")
    chunks = store.content.chunks
    for sha, ref in manifest.unique_chunks().items():
        if chunks.has_chunk(sha):
            continue
        git_id = entries.get(b"c-" + sha.encode())
        if git_id is None or git_id.decode() != ref.git:
            raise IntegrityError(
                f"carrier of sha256:{blob.sha256} on {where} lacks chunk sha256:{sha}"
            )
        data = _read_blob(get, git_id, blob, where)
        try:
            chunks.put_chunk(data, sha)
        except IntegrityError:
            raise IntegrityError(
                f"refusing content sha256:{blob.sha256} from {where}: its chunk sha256:{sha} "
                "is corrupt there",
                hint="push it again from a store that has it intact",
            ) from None
    # the whole content must hash right before it is published
    with io.BufferedReader(_ManifestRaw(chunks, manifest), 1 << 20) as f:
        while f.read(1 << 20):
            pass
    store.content.put_manifest(manifest)


def _read_blob(get: Callable[[ObjectID], Any], sha: ObjectID, blob: Blob, where: str) -> bytes:
    try:
        obj = get(sha)
    except KeyError:
        raise IntegrityError(
            f"carrier of sha256:{blob.sha256} on {where} is missing object {sha.decode()}"
        ) from None
    if not isinstance(obj, GitBlob):
        raise IntegrityError(f"carrier of sha256:{blob.sha256} on {where} is malformed")
    return bytes(obj.as_raw_string())


class _PieceStream(io.RawIOBase):
    """The concatenated piece blobs of a format-1 carrier as one readable stream."""

    def __init__(self, get: Callable[[ObjectID], Any], ids: list[ObjectID]) -> None:
        super().__init__()
        self._get = get
        self._ids: Iterator[ObjectID] = iter(ids)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._buf:
            sha = next(self._ids, None)
            if sha is None:
                return 0
            try:
                obj = self._get(sha)
            except KeyError:
                raise IntegrityError(f"carrier piece {sha.decode()} is missing") from None
            if not isinstance(obj, GitBlob):
                raise IntegrityError(f"carrier piece {sha.decode()} is not a blob")
            self._buf = memoryview(obj.as_raw_string())
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
