"""push/pull of a store through an ordinary git remote (path, file://, git://, http).

Records (``refs/steps/*``, ``refs/builds/*``) travel as the git objects they
are. Content files are not git objects locally (see content.py), so for the
wire each one is wrapped in a *carrier*: a commit at
``refs/content/sha256/<hex>`` whose tree holds the bytes as 8 MiB blobs named
``0000000``, ``0000001``, ... Carriers are deterministic (fixed commit
metadata), so the same content always has the same carrier id and pushes
from different stores never conflict.

Carriers are never stored locally. ``push`` builds them on the fly inside
dulwich's ``generate_pack_data`` hook (one read to name the chunks, one to
send them; at most one chunk in memory). ``pull`` fetches them into a scratch
repository, streams the chunks into the content store while re-checking the
sha256 and size the pointer promises, then deletes the scratch repository.
Refs are created only after everything they reach is local, so an
interrupted pull leaves only garbage. A remote that is itself a reprobuild
store on a local path is served directly from its ``lfs/`` directory.

Conflicts (a ref present on both sides with different values) are never
overwritten; they are reported.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import uuid
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from dulwich.client import get_transport_and_path
from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.object_store import MissingObjectFinder
from dulwich.objects import Blob as GitBlob
from dulwich.objects import Commit, ObjectID, Tree
from dulwich.pack import UnpackedObject, full_unpacked_object, pack_object_chunks
from dulwich.refs import Ref
from dulwich.repo import Repo

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.store.records import Blob, TransferReport

if TYPE_CHECKING:
    from reprobuild.store.core import Store

CARRIER_PREFIX = b"refs/content/sha256/"
CHUNK_SIZE = 8 << 20
ZERO_SHA = ObjectID(b"0" * 40)
_IDENTITY = b"reprobuild <reprobuild@localhost>"
_BLOB_TYPE = 3
_WIRE_PIECE = 512 << 10


# ------------------------------------------------------------------ remotes


def _local_path(url: str) -> Path | None:
    if "://" not in url:
        return Path(url).expanduser().absolute()
    parsed = urlparse(url)
    return Path(parsed.path) if parsed.scheme == "file" else None


def _local_store_dir(url: str) -> Path | None:
    """The path of a remote that is itself a reprobuild store on this machine."""
    p = _local_path(url)
    if p is not None and (p / "reprobuild" / "format").is_file() and (p / "lfs").is_dir():
        return p
    return None


def _client(url: str, *, create: bool) -> tuple[Any, str]:
    local = _local_path(url)
    if local is not None:
        if not local.exists():
            if not create:
                raise StoreError(f"remote {url} does not exist")
            local.mkdir(parents=True)
            Repo.init_bare(str(local)).close()
        url = str(local)
    try:
        client, path = get_transport_and_path(url)
    except Exception as exc:
        raise StoreError(f"cannot use remote {url!r}: {exc}") from exc
    return client, path


def _is_record_ref(ref: bytes) -> bool:
    return ref.startswith((b"refs/steps/", b"refs/builds/"))


def _is_build_ref(ref: bytes) -> bool:
    return ref.startswith(b"refs/builds/")


# --------------------------------------------------------------- carriers


@dataclass
class _Carrier:
    blob: Blob
    chunk_ids: list[ObjectID]
    tree: Tree
    commit: Commit


def _git_blob_id(data: bytes) -> ObjectID:
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return ObjectID(h.hexdigest().encode("ascii"))


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk


def _make_carrier(store: Store, blob: Blob) -> _Carrier:
    """Name the chunks of one content object (first read; also re-checks its sha256)."""
    h = hashlib.sha256()
    ids: list[ObjectID] = []
    size = 0
    for chunk in _read_chunks(store.path_of(blob.sha256)):
        h.update(chunk)
        size += len(chunk)
        ids.append(_git_blob_id(chunk))
    if h.hexdigest() != blob.sha256 or size != blob.size:
        raise IntegrityError(
            f"refusing to push corrupt content sha256:{blob.sha256} "
            f"(its bytes hash to sha256:{h.hexdigest()}, {size} bytes)",
            hint="run `reprobuild store verify`",
        )
    tree = Tree()
    for i, sha in enumerate(ids):
        tree.add(b"%07d" % i, 0o100644, sha)
    commit = Commit()
    commit.tree = tree.id
    commit.parents = []
    commit.author = commit.committer = _IDENTITY
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = f"content sha256:{blob.sha256} size {blob.size}\n".encode()
    return _Carrier(blob, ids, tree, commit)


def _chunk_object(data: bytes, sha: ObjectID) -> UnpackedObject:
    """A pack entry for one chunk, deflated at level 1, or stored if it won't shrink.

    Most content (.deb, .zst, squashfs) is already compressed; zlib spends
    ~20 s/GB failing to shrink it, so a 64 KiB sample decides.
    """
    sample = data[:65536]
    level = 1 if sample and len(zlib.compress(sample, 1)) < 0.9 * len(sample) else 0
    u = UnpackedObject(_BLOB_TYPE, sha=bytes.fromhex(sha.decode()), decomp_chunks=[data])
    packed = b"".join(
        pack_object_chunks(
            _BLOB_TYPE, [data], object_format=DEFAULT_OBJECT_FORMAT, compression_level=level
        )
    )
    # dulwich's HTTP server refuses chunks over 1 MiB: hand the pack writer small pieces
    u.comp_chunks = [packed[i : i + _WIRE_PIECE] for i in range(0, len(packed), _WIRE_PIECE)]
    return u


# ------------------------------------------------------------------ push


def push(store: Store, url: str, *, only: Collection[bytes] | None = None) -> TransferReport:
    """Send every step and build ref, and all content they reach, to ``url``.

    ``only`` limits it to those refs (a remote step cache gets a build's steps only).

    Content goes first, in batches of about PUSH_BATCH_BYTES (one pack each,
    so an interrupted push resumes where it stopped and no single request
    grows without bound); the record refs follow in a last, small pack. A
    remote that accepted the records therefore already has their content.
    """
    local_refs = store._record_roots()
    if only is not None:
        local_refs = {r: s for r, s in local_refs.items() if r in only}
    _, pointers = store._reachable(local_refs)
    for blob in pointers.values():
        if not store.has(blob.sha256):
            raise StoreError(
                f"cannot push: content sha256:{blob.sha256} is referenced but missing locally",
                hint="run `reprobuild store verify`",
            )
    remote_store = _local_store_dir(url)
    if remote_store is not None and remote_store.resolve() == store.path.resolve():
        raise StoreError("cannot push a store to itself")

    client, path = _client(url, create=True)
    sent: list[Blob] = []
    if remote_store is not None:  # another store: give it plain content files
        from reprobuild.store.core import Store as _Store

        with _Store.open_store(remote_store, create=False) as other:
            for blob in sorted(pointers.values(), key=lambda b: b.sha256):
                if not other.has(blob.sha256):
                    other.put_file(
                        store.path_of(blob.sha256),
                        expected_sha256=blob.sha256,
                        expected_size=blob.size,
                    )
                    sent.append(blob)
    else:
        try:
            remote_refs = client.get_refs(path).refs
        except Exception as exc:
            raise StoreError(f"cannot reach remote {url}: {exc}") from exc
        have = {
            bytes(r[len(CARRIER_PREFIX) :]).decode()
            for r in remote_refs
            if r.startswith(CARRIER_PREFIX)
        }
        missing = sorted(
            (b for b in pointers.values() if b.sha256 not in have), key=lambda b: b.sha256
        )
        for batch in _batches(missing):
            carriers = {c.commit.id: c for c in (_make_carrier(store, b) for b in batch)}
            refs = {
                Ref(CARRIER_PREFIX + c.blob.sha256.encode()): cid for cid, c in carriers.items()
            }
            _send(store, client, path, url, _set_refs(refs), carriers)
            sent.extend(batch)

    updated: list[str] = []
    conflicts: list[str] = []
    unchanged = 0

    def record_refs(remote: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        nonlocal unchanged
        new: dict[Ref, ObjectID] = {}
        for ref, sha in sorted(local_refs.items()):
            theirs = remote.get(Ref(ref))
            if theirs == sha:
                unchanged += 1
            elif theirs is None or theirs == ZERO_SHA:
                new[Ref(ref)] = sha
                updated.append(ref.decode())
            else:
                conflicts.append(ref.decode())
        return new

    _send(store, client, path, url, record_refs, {})
    return TransferReport(
        url, tuple(updated), unchanged, tuple(conflicts), len(sent), sum(b.size for b in sent)
    )


PUSH_BATCH_BYTES = 256 << 20


def _set_refs(
    refs: dict[Ref, ObjectID],
) -> Callable[[dict[Ref, ObjectID]], dict[Ref, ObjectID]]:
    def update_refs(remote: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        return {r: s for r, s in refs.items() if r not in remote}

    return update_refs


def _batches(blobs: list[Blob]) -> Iterator[list[Blob]]:
    batch: list[Blob] = []
    size = 0
    for blob in blobs:
        if batch and size + blob.size > PUSH_BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(blob)
        size += blob.size
    if batch:
        yield batch


def _send(
    store: Store,
    client: Any,
    path: str,
    url: str,
    update_refs: Callable[[dict[Ref, ObjectID]], dict[Ref, ObjectID]],
    carriers: dict[ObjectID, _Carrier],
) -> None:
    """One send_pack: the wanted native objects plus the given carriers, made on the fly."""

    def generate_pack_data(
        have: Any,
        want: Any,
        *,
        ofs_delta: bool = False,
        progress: Callable[[bytes], None] | None = None,
    ) -> tuple[int, Iterator[UnpackedObject]]:
        objects = store.repo.object_store
        native_want = [w for w in want if w not in carriers]
        native_have = [h for h in have if h in objects]
        finder = MissingObjectFinder(objects, haves=native_have, wants=native_want)
        native = [sha for sha, _hint in finder]
        wanted_ids = _carrier_ids(carriers.values(), set(native))

        def records() -> Iterator[UnpackedObject]:
            for sha in native:
                yield full_unpacked_object(objects[sha])
            emitted: set[ObjectID] = set()
            for carrier in carriers.values():
                for obj in (carrier.commit, carrier.tree):
                    if obj.id in wanted_ids and obj.id not in emitted:
                        emitted.add(obj.id)
                        yield full_unpacked_object(obj)
                for i, chunk in enumerate(_read_chunks(store.path_of(carrier.blob.sha256))):
                    sha = carrier.chunk_ids[i]
                    if sha not in wanted_ids or sha in emitted:
                        continue
                    if _git_blob_id(chunk) != sha:
                        raise IntegrityError(
                            f"content sha256:{carrier.blob.sha256} changed while being pushed"
                        )
                    emitted.add(sha)
                    yield _chunk_object(chunk, sha)

        return len(native) + len(wanted_ids), records()

    try:
        result = client.send_pack(path, update_refs, generate_pack_data)
    except (IntegrityError, StoreError):
        raise
    except Exception as exc:
        raise StoreError(f"push to {url} failed: {exc}") from exc
    status = getattr(result, "ref_status", None) or {}
    failed = {bytes(r).decode(): msg for r, msg in status.items() if msg}
    if failed:
        raise StoreError(
            f"push to {url}: the remote refused {len(failed)} ref(s): "
            + "; ".join(f"{r}: {m}" for r, m in sorted(failed.items()))
        )


def _carrier_ids(carriers: Any, exclude: set[ObjectID]) -> set[ObjectID]:
    """Every object id the carriers add to a pack, minus what is sent anyway."""
    ids: set[ObjectID] = set()
    for c in carriers:
        ids.add(c.commit.id)
        ids.add(c.tree.id)
        ids.update(c.chunk_ids)
    return ids - exclude


# ------------------------------------------------------------------ pull


class _ChunkStream(io.RawIOBase):
    """The concatenated chunk blobs of a carrier as one readable stream."""

    def __init__(self, repo: Repo, chunk_ids: list[ObjectID]) -> None:
        super().__init__()
        self._repo = repo
        self._ids = iter(chunk_ids)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._buf:
            sha = next(self._ids, None)
            if sha is None:
                return 0
            try:
                obj = self._repo.object_store[sha]
            except KeyError:
                raise IntegrityError(f"carrier chunk {sha.decode()} is missing") from None
            if not isinstance(obj, GitBlob):
                raise IntegrityError(f"carrier chunk {sha.decode()} is not a blob")
            self._buf = memoryview(obj.as_raw_string())
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def pull(store: Store, url: str) -> TransferReport:
    """Fetch every step and build ref of ``url`` that is new here, with its content."""
    client, path = _client(url, create=False)
    remote_refs: dict[bytes, ObjectID] = {}

    def want_records(refs: Mapping[Ref, ObjectID], depth: int | None = None) -> list[ObjectID]:
        remote_refs.update({bytes(r): s for r, s in refs.items()})
        objects = store.repo.object_store
        return sorted({s for r, s in refs.items() if _is_record_ref(bytes(r)) and s not in objects})

    with store._publishing():
        try:
            client.fetch(path, store.repo, determine_wants=want_records)
        except Exception as exc:
            raise StoreError(f"pull from {url} failed: {exc}") from exc
        store.repo.object_store._update_pack_cache()

        local = store._record_roots()
        to_import: dict[bytes, ObjectID] = {}
        conflicts: list[str] = []
        unchanged = 0
        for ref, sha in sorted(remote_refs.items()):
            if not _is_record_ref(ref):
                continue
            mine = local.get(ref)
            if mine == sha:
                unchanged += 1
            elif mine is None:
                to_import[ref] = sha
            else:
                conflicts.append(ref.decode())
        _, pointers = store._reachable(to_import)
        needed = sorted(
            (b for b in pointers.values() if not store.has(b.sha256)), key=lambda b: b.sha256
        )
        got, got_bytes = _fetch_content(store, client, path, url, needed, remote_refs)

        missing = {b.sha256 for b in needed} - got
        incomplete: list[str] = []
        updated: list[str] = []
        # steps before builds: a build ref never appears before the steps it lists
        for ref, sha in sorted(to_import.items(), key=lambda i: (_is_build_ref(i[0]), i[0])):
            _, ptrs = store._reachable({ref: sha})
            if any(p in missing for p in ptrs):
                incomplete.append(ref.decode())
                continue
            if store._set_ref(ref, None, sha):
                updated.append(ref.decode())
            else:
                conflicts.append(ref.decode())
    if incomplete:
        raise StoreError(
            f"pull from {url}: {len(incomplete)} record(s) not imported because the remote "
            f"lacks their content ({len(missing)} object(s), e.g. sha256:{min(missing)}): "
            + ", ".join(incomplete[:5]),
            hint="push to that remote from a store that has the content, then pull again",
        )
    return TransferReport(url, tuple(updated), unchanged, tuple(conflicts), len(got), got_bytes)


def _fetch_content(
    store: Store,
    client: Any,
    path: str,
    url: str,
    needed: list[Blob],
    remote_refs: Mapping[bytes, ObjectID],
) -> tuple[set[str], int]:
    """Bring ``needed`` content in; returns the sha256s obtained and their bytes."""
    got: set[str] = set()
    total = 0
    if not needed:
        return got, total
    other_dir = _local_store_dir(url)
    carried = [b for b in needed if CARRIER_PREFIX + b.sha256.encode() in remote_refs]
    if other_dir is not None:
        from reprobuild.store.core import Store as _Store

        with _Store.open_store(other_dir, create=False) as other:
            for blob in needed:
                if other.has(blob.sha256):
                    with other.open_blob(blob.sha256) as f:
                        store.put_stream(f, expected_sha256=blob.sha256, expected_size=blob.size)
                    got.add(blob.sha256)
                    total += blob.size
        carried = [b for b in carried if b.sha256 not in got]
    if not carried:
        return got, total
    wanted = {remote_refs[CARRIER_PREFIX + b.sha256.encode()]: b for b in carried}
    local = _local_path(url)
    scratch: Path | None = None
    if local is not None:  # read the carriers in place: no pack copy
        repo = Repo(str(local))
    else:
        scratch = store._tmp / f"pull-{uuid.uuid4().hex}"
        repo = Repo.init_bare(str(scratch), mkdir=True)
    try:
        if scratch is not None:
            try:
                client.fetch(path, repo, determine_wants=lambda refs, depth=None: sorted(wanted))
            except Exception as exc:
                raise StoreError(f"pull from {url} failed while fetching content: {exc}") from exc
            repo.object_store._update_pack_cache()
        for commit_id, blob in sorted(wanted.items(), key=lambda kv: kv[1].sha256):
            try:
                commit = repo.object_store[commit_id]
                tree = repo.object_store[commit.tree] if isinstance(commit, Commit) else None
            except KeyError:
                raise IntegrityError(
                    f"content carrier for sha256:{blob.sha256} is incomplete on {url}"
                ) from None
            if not isinstance(tree, Tree):
                raise IntegrityError(f"content carrier for sha256:{blob.sha256} is malformed")
            chunk_ids = [e.sha for e in sorted(tree.items(), key=lambda e: e.path)]
            with io.BufferedReader(_ChunkStream(repo, chunk_ids), CHUNK_SIZE) as stream:
                store.content.put_stream(
                    stream, expected_sha256=blob.sha256, expected_size=blob.size
                )
            got.add(blob.sha256)
            total += blob.size
    finally:
        repo.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return got, total
