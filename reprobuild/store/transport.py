"""push/pull of a store through an ordinary git remote (path, file://, git://, http).

Records (``refs/steps/*``, ``refs/builds/*``) travel as the git objects they
are; content travels in *carriers* (see carriers.py): ``refs/content/sha256/<hex>``
commits whose trees hold a manifest and one blob per chunk. The remote stays a
plain git repository that any git host serves.

Transfers cost what the request needs, not what the remote holds:

* push reads the remote's refs first (the advertisement is the question),
  then sends only the carriers the remote lacks, and in them only the chunk
  blobs that no carrier already on the remote lists;
* pull and the step cache fetch only the record refs asked for and the
  carriers of content missing here, naming the carriers of content both sides
  have as ``have`` so the remote leaves out the chunks this store holds;
* a remote on a local path is read in place, object by object through its
  pack indexes, never by dulwich's local fetch (which inflates every object of
  every pack to look for deltas: 12 of 13 s on a 2 GB remote).

Refs are created only after everything they reach is local and checked, so an
interrupted pull leaves only garbage. A remote that is itself a reprobuild
store on a local path is served directly from its ``lfs/`` directory.
Conflicts (a ref present on both sides with different values) are never
overwritten; they are reported.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dulwich.client import get_transport_and_path
from dulwich.object_store import ObjectStoreGraphWalker
from dulwich.objects import Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.redact import redact
from reprobuild.store._fs import close_repo, release_frames
from reprobuild.store.carriers import (
    CARRIER_PREFIX,
    PIECE_SIZE,
    carrier_id_if_chunked,
    carrier_ref,
    import_carrier,
)
from reprobuild.store.history import BUILDS_PREFIX, STEPS_PREFIX
from reprobuild.store.packscan import PackGuard, bounded_reader
from reprobuild.store.records import Blob, BuildRecord, TransferReport
from reprobuild.store.remotes import (
    RemoteLimits,
    RemoteTimeout,
    check_object_size,
    check_room,
    git_object_cap,
    local_path,
    network_client,
    remote_error,
)
from reprobuild.store.validate import check_build, check_step
from reprobuild.store.wire import BLOB_TYPE, batches, send, set_refs

if TYPE_CHECKING:
    from reprobuild.store.core import Store

CHUNK_SIZE = PIECE_SIZE  # format-1 carrier pieces (kept for callers of the old name)
ZERO_SHA = ObjectID(b"0" * 40)


# ------------------------------------------------------------------ remotes


def _local_path(url: str) -> Path | None:
    return local_path(url)


def _local_store_dir(url: str) -> Path | None:
    """The path of a remote that is itself a reprobuild store on this machine."""
    p = _local_path(url)
    if p is not None and (p / "reprobuild" / "format").is_file() and (p / "lfs").is_dir():
        return p
    return None


def _client(url: str, *, create: bool) -> tuple[Any, str]:
    local = _local_path(url)
    if local is None:
        return network_client(url, RemoteLimits.from_env())
    if not local.exists():
        if not create:
            raise StoreError(f"remote {redact(url)} does not exist")
        local.mkdir(parents=True)
        Repo.init_bare(str(local)).close()
    try:
        client, path = get_transport_and_path(str(local))
    except Exception as exc:
        raise StoreError(f"cannot use remote {redact(url)}: {redact(str(exc))}") from exc
    return client, path


def _remote_refs(client: Any, path: str, url: str) -> dict[bytes, ObjectID]:
    try:
        return {bytes(r): s for r, s in client.get_refs(path).refs.items()}
    except StoreError:
        raise
    except Exception as exc:
        raise remote_error("cannot reach remote", url, exc, RemoteLimits.from_env()) from None


def _is_record_ref(ref: bytes) -> bool:
    return ref.startswith((b"refs/steps/", b"refs/builds/"))


def _is_build_ref(ref: bytes) -> bool:
    return ref.startswith(b"refs/builds/")


def _open_local_repo(url: str) -> Repo | None:
    local = _local_path(url)
    if local is None:
        return None
    try:
        return Repo(str(local))
    except Exception as exc:
        raise StoreError(f"cannot read remote {redact(url)}: {exc}") from exc


# ------------------------------------------------------------------ push


def _known_chunks(store: Store, remote_refs: Mapping[bytes, ObjectID]) -> set[str]:
    """Chunks the remote surely has: those of carriers identical to ours for the same content."""
    known: set[str] = set()
    chunks = store.content.chunks
    for ref, sha in remote_refs.items():
        if not ref.startswith(CARRIER_PREFIX):
            continue
        name = ref[len(CARRIER_PREFIX) :].decode()
        try:
            manifest = chunks.manifest(name)
        except (IntegrityError, StoreError):
            continue
        if manifest is not None and carrier_id_if_chunked(store, name) == sha:
            known.update(manifest.unique_chunks())
    return known


def push(store: Store, url: str, *, only: Collection[bytes] | None = None) -> TransferReport:
    """Send step and build refs (all, or ``only`` those) and the content they reach.

    The remote's refs are read first; only carriers it lacks are sent, with
    only the chunk blobs it lacks, in packs of about PUSH_BATCH_BYTES (so an
    interrupted push resumes where it stopped). The record refs follow in a
    last, small pack: a remote that accepted the records has their content.
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
    client, path = _client(url, create=True)
    sent, sent_bytes = _push_carriers(store, client, path, url, pointers.values())
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

    send(store, client, path, url, record_refs, [], set())
    return TransferReport(
        redact(url),
        tuple(updated),
        unchanged,
        tuple(conflicts),
        len(sent),
        sum(b.size for b in sent),
        sent_bytes,
    )


def push_content(store: Store, url: str, blobs: Iterable[Blob]) -> int:
    """Send content only (no record): what a cluster's worker returns for checking.

    Several machines may create the same carrier at once (a quorum's workers
    make the same bytes): a refused ref is tried again, a few times, and the
    next try finds it there. Returns the bytes sent.
    """
    blobs = sorted(set(blobs), key=lambda b: b.sha256)
    for blob in blobs:
        if not store.has(blob.sha256):
            raise StoreError(f"cannot push: content sha256:{blob.sha256} is missing locally")
    for attempt in range(4):
        client, path = _client(url, create=True)
        try:
            return _push_carriers(store, client, path, url, blobs)[1]
        except RemoteTimeout:
            raise
        except StoreError:
            if attempt == 3:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def pull_content(store: Store, url: str, blobs: Iterable[Blob]) -> set[str]:
    """Bring in content by sha256 alone (re-hashed); returns the sha256s now here."""
    needed = sorted({b for b in blobs if not store.has(b.sha256)}, key=lambda b: b.sha256)
    have = {b.sha256 for b in blobs} - {b.sha256 for b in needed}
    if not needed:
        return have
    client, path = _client(url, create=False)
    remote_refs = _remote_refs(client, path, url)
    with store._writing(), store._publishing():
        got, _ = fetch_content(store, client, path, url, needed, remote_refs)
    return have | got


def _push_carriers(
    store: Store, client: Any, path: str, url: str, blobs: Iterable[Blob]
) -> tuple[list[Blob], int]:
    """Send the carriers of ``blobs`` the remote lacks; returns them and the bytes sent."""
    sent: list[Blob] = []
    sent_bytes = 0
    remote_store = _local_store_dir(url)
    if remote_store is not None and remote_store.resolve() == store.path.resolve():
        raise StoreError("cannot push a store to itself")
    if remote_store is not None:  # another store: give it manifests, chunks and files
        with type(store).open_store(remote_store, create=False) as other, other._writing():
            for blob in sorted(blobs, key=lambda b: b.sha256):
                if not other.has(blob.sha256):
                    sent_bytes += copy_content(store, other, blob)
                    sent.append(blob)
        return sent, sent_bytes
    remote_refs = _remote_refs(client, path, url)
    known = _known_chunks(store, remote_refs)
    missing = sorted(
        (b for b in blobs if carrier_ref(b.sha256) not in remote_refs), key=lambda b: b.sha256
    )
    for batch in batches(store, missing, known):
        refs = {Ref(carrier_ref(c.blob.sha256)): c.commit.id for c in batch}
        sent_bytes += send(store, client, path, url, set_refs(refs), batch, known)
        sent.extend(c.blob for c in batch)
        for c in batch:
            known.update(c.chunks)
    return sent, sent_bytes


def copy_content(src: Store, dst: Store, blob: Blob) -> int:
    """Copy one object store to store: missing chunks and the manifest, or the whole file.

    Every chunk is re-hashed on the way; the receiver checks the whole
    content before publishing its manifest. Returns the bytes copied.
    """
    manifest = src.content.chunks.manifest(blob.sha256)
    if manifest is None or src.content.is_whole(blob.sha256):
        with src.open_blob(blob.sha256) as f:
            dst.put_stream(f, expected_sha256=blob.sha256, expected_size=blob.size)
        return blob.size
    copied = 0
    with dst._publishing():
        for sha, ref in manifest.unique_chunks().items():
            if not dst.content.chunks.has_chunk(sha):
                try:
                    data = src.content.chunks.read_chunk(ref)
                    dst.content.chunks.put_chunk(data, sha)
                except (IntegrityError, StoreError) as exc:
                    raise IntegrityError(
                        f"refusing content sha256:{blob.sha256}: {exc}",
                        hint="run `reprobuild store verify` where it comes from",
                    ) from None
                copied += ref.size
    from reprobuild.store.content import _ManifestRaw

    with _ManifestRaw(dst.content.chunks, manifest) as check:
        buf = bytearray(1 << 20)
        while check.readinto(buf):
            pass
    dst.content.put_manifest(manifest)
    return copied


# ------------------------------------------------------------------ pull


def fetch_records(
    store: Store, client: Any, path: str, url: str, wants: Mapping[bytes, ObjectID]
) -> dict[bytes, str]:
    """Bring in the records ``wants`` names (ref -> commit), checked; returns those refused.

    Step and build records are checked (validate.py) and only their canonical
    objects are written here; other refs (signatures) are copied as they are
    and checked by whoever reads them. A network remote's objects arrive in a
    scratch repository through :class:`PackGuard`; a local-path remote is
    read in place, object by object: cost in proportion to what is new.
    """
    objects = store.repo.object_store
    refused: dict[bytes, str] = {}
    if not wants:
        return refused
    missing = sorted({s for s in wants.values() if s not in objects})
    with _remote_objects(store, client, path, url, missing) as theirs:

        def get(sha: ObjectID) -> Any:
            return objects[sha] if sha in objects else theirs(sha)

        for ref, sha in sorted(wants.items()):
            try:
                if ref.startswith(STEPS_PREFIX):
                    made = check_step(get, ref, sha)[1]
                elif ref.startswith(BUILDS_PREFIX):
                    made = check_build(get, ref, sha)[1]
                else:
                    made = _walk(get, sha)
            except StoreError as exc:
                refused[ref] = exc.message
                continue
            for obj in made:
                store._add(obj)
    return refused


@contextlib.contextmanager
def _remote_objects(
    store: Store, client: Any, path: str, url: str, wants: list[ObjectID]
) -> Iterator[Any]:
    """A reader of the remote's objects holding ``wants``: in place, or a guarded fetch."""
    scratch: Path | None = None
    repo = _open_local_repo(url)
    if repo is None:
        scratch = store._tmp / f"records-{uuid.uuid4().hex}"
        repo = Repo.init_bare(str(scratch), mkdir=True)
    try:
        if wants and scratch is not None:
            guarded_fetch(client, path, repo, wants, url)
        if scratch is None:  # read in place: each object's size is checked before it is read
            limits = RemoteLimits.from_env()
            yield bounded_reader(repo.object_store, git_object_cap(limits), f"remote {redact(url)}")
        else:
            yield repo.object_store.__getitem__
    except BaseException as exc:
        release_frames(exc)  # a failed pack read must not turn into BufferError below
        raise
    finally:
        close_repo(repo)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _walk(get: Callable[[ObjectID], Any], sha: ObjectID) -> list[ShaFile]:
    """A commit and what it reaches (no history), children first; missing ones left out."""
    out: list[ShaFile] = []
    stack = [sha]
    seen: set[ObjectID] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            obj = get(current)
        except KeyError:
            continue
        out.append(obj)
        if isinstance(obj, Commit):
            stack.append(obj.tree)
        elif isinstance(obj, Tree):
            stack.extend(e.sha for e in obj.items() if e.mode != 0o160000)
    return out[::-1]


def guarded_fetch(client: Any, path: str, repo: Repo, wants: list[ObjectID], url: str) -> None:
    """Fetch ``wants`` from a network remote into ``repo``, every byte through a PackGuard."""
    limits = RemoteLimits.from_env()
    guard = PackGuard(
        max_object=git_object_cap(limits),
        max_bytes=limits.max_total,
        what=f"remote {redact(url)}",
    )
    with tempfile.TemporaryFile(dir=repo.object_store.path, prefix="incoming-") as f:

        def write(data: bytes) -> int:
            guard.feed(data)
            return f.write(data)

        try:
            client.fetch_pack(path, lambda refs, depth=None: wants, repo.get_graph_walker(), write)
        except StoreError:
            raise
        except Exception as exc:
            raise remote_error("fetch from", url, exc, limits) from None
        if not f.tell():
            return
        f.seek(0)
        try:
            repo.object_store.add_thin_pack(f.read, None, max_input_size=limits.max_total)
        except Exception as exc:
            raise StoreError(
                f"remote {redact(url)} sent a pack that cannot be read: {exc}"
            ) from None


def _wanted_refs(
    store: Store,
    client: Any,
    path: str,
    url: str,
    remote_refs: Mapping[bytes, ObjectID],
    refs: Iterable[str] | None,
) -> tuple[dict[bytes, ObjectID], dict[bytes, str]]:
    """The remote record refs a pull asks for: all, or the named ones (builds with
    their steps); and the builds refused on the way (ref -> why)."""
    if refs is None:
        return {r: s for r, s in remote_refs.items() if _is_record_ref(r)}, {}
    wanted: dict[bytes, ObjectID] = {}
    for spec in refs:
        ref = _resolve_remote(spec, remote_refs)
        wanted[ref] = remote_refs[ref]
    builds = {r: s for r, s in wanted.items() if _is_build_ref(r)}
    refused = fetch_records(store, client, path, url, builds)
    for ref in refused:
        del wanted[ref]
        del builds[ref]
    for sha in builds.values():
        try:
            record = BuildRecord.from_bytes(
                store._read_blob(store._commit_obj(sha).tree, b"build.json")
            )
        except (KeyError, StoreError):
            continue
        for key in record.steps:
            step = b"refs/steps/" + key.encode()
            if step in remote_refs:
                wanted[step] = remote_refs[step]
    return wanted, refused


def _resolve_remote(spec: str, remote_refs: Mapping[bytes, ObjectID]) -> bytes:
    if spec.startswith("refs/"):
        ref = spec.encode()
    elif "/" in spec:
        ref = b"refs/builds/" + spec.encode()
    else:
        prefix = b"refs/builds/" + spec.encode() + b"/"
        numbers = [
            int(r[len(prefix) :])
            for r in remote_refs
            if r.startswith(prefix) and r[len(prefix) :].isdigit()
        ]
        if not numbers:
            raise StoreError(f"the remote has no builds of {spec!r}")
        ref = prefix + str(max(numbers)).encode()
    if ref not in remote_refs or not _is_record_ref(ref):
        raise StoreError(f"the remote has no {ref.decode()}")
    return ref


def pull(store: Store, url: str, refs: Iterable[str] | None = None) -> TransferReport:
    """Fetch the remote's step and build refs new here (or only ``refs``), with their content."""
    client, path = _client(url, create=False)
    remote_refs = _remote_refs(client, path, url)
    with store._publishing():
        wanted, refused = _wanted_refs(store, client, path, url, remote_refs, refs)
        local = store._record_roots()
        to_import: dict[bytes, ObjectID] = {}
        conflicts: list[str] = []
        unchanged = 0
        for ref, sha in sorted(wanted.items()):
            mine = local.get(ref)
            if mine == sha:
                unchanged += 1
            elif mine is None:
                to_import[ref] = sha
            else:
                conflicts.append(ref.decode())
        refused.update(fetch_records(store, client, path, url, to_import))
        for ref in refused:
            to_import.pop(ref, None)
        importable: dict[bytes, ObjectID] = {}
        incomplete: list[str] = []
        for ref, sha in to_import.items():
            try:
                store._reachable({ref: sha})
                importable[ref] = sha
            except StoreError:
                incomplete.append(ref.decode())
        _, pointers = store._reachable(importable)
        needed = sorted(
            (b for b in pointers.values() if not store.has(b.sha256)), key=lambda b: b.sha256
        )
        got, got_bytes = fetch_content(store, client, path, url, needed, remote_refs)
        missing = {b.sha256 for b in needed} - got
        updated: list[str] = []
        # steps before builds: a build ref never appears before the steps it lists
        for ref, sha in sorted(importable.items(), key=lambda i: (_is_build_ref(i[0]), i[0])):
            _, ptrs = store._reachable({ref: sha})
            if any(p in missing for p in ptrs):
                incomplete.append(ref.decode())
                continue
            if store._set_ref(ref, None, sha):
                updated.append(ref.decode())
            else:
                conflicts.append(ref.decode())
    if refused:
        ref, why = min(refused.items())
        raise StoreError(
            f"pull from {redact(url)}: {len(refused)} malformed record(s) refused"
            f" ({len(updated)} imported), e.g. {ref.decode(errors='replace')}: {why}",
            hint="that remote holds records reprobuild did not write; nothing of them was kept",
        )
    if incomplete:
        raise StoreError(
            f"pull from {redact(url)}: {len(incomplete)} record(s) not imported because the "
            f"remote lacks their content"
            + (f" ({len(missing)} object(s), e.g. sha256:{min(missing)})" if missing else "")
            + ": "
            + ", ".join(sorted(incomplete)[:5]),
            hint="push to that remote from a store that has the content, then pull again",
        )
    return TransferReport(
        redact(url), tuple(updated), unchanged, tuple(conflicts), len(got), got_bytes
    )


def fetch_content(
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
    limits = RemoteLimits.from_env()
    for blob in needed:
        check_object_size(blob.size, blob.sha256, url, limits)
    check_room(store.path, sum(b.size for b in needed), url, limits)
    other_dir = _local_store_dir(url)
    if other_dir is not None:
        with type(store).open_store(other_dir, create=False) as other:
            for blob in needed:
                if other.has(blob.sha256):
                    copy_content(other, store, blob)
                    got.add(blob.sha256)
                    total += blob.size
    carried = [b for b in needed if b.sha256 not in got and carrier_ref(b.sha256) in remote_refs]
    if not carried:
        return got, total
    wanted = {remote_refs[carrier_ref(b.sha256)]: b for b in carried}
    scratch: Path | None = None
    repo = _open_local_repo(url)
    if repo is None:  # fetch the carriers, leaving out chunks of carriers both sides have
        haves: list[ObjectID] = []
        bases: dict[bytes, Any] = {}  # git id -> local chunk: what a thin pack may delta against
        for ref, sha in remote_refs.items():
            if not ref.startswith(CARRIER_PREFIX):
                continue
            name = ref[len(CARRIER_PREFIX) :].decode()
            if carrier_id_if_chunked(store, name) != sha:
                continue
            haves.append(sha)
            manifest = store.content.chunks.manifest(name)
            if manifest is not None:
                bases.update((c.git.encode(), c) for c in manifest.unique_chunks().values())
        scratch = store._tmp / f"pull-{uuid.uuid4().hex}"
        repo = Repo.init_bare(str(scratch), mkdir=True)
        walker = ObjectStoreGraphWalker(haves, lambda sha: [])
        repo.get_graph_walker = lambda heads=None: walker  # type: ignore[method-assign]
        _resolve_bases_locally(store, repo, bases)
        try:
            guarded_fetch(client, path, repo, sorted(wanted), url)
        except BaseException as exc:
            close_repo(repo, exc)
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        repo.object_store._update_pack_cache()
    try:
        get = (
            repo.object_store.__getitem__
            if scratch is not None  # what came through guarded_fetch
            else bounded_reader(repo.object_store, git_object_cap(limits), f"remote {redact(url)}")
        )
        for commit_id, blob in sorted(wanted.items(), key=lambda kv: kv[1].sha256):
            import_carrier(store, blob, commit_id, get, redact(url))
            got.add(blob.sha256)
            total += blob.size
    except BaseException as exc:
        release_frames(exc)  # a failed pack read must not turn into BufferError below
        raise
    finally:
        close_repo(repo)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return got, total


def _resolve_bases_locally(store: Store, repo: Repo, bases: dict[bytes, Any]) -> None:
    """Let a thin pack's deltas against chunks this store has resolve from the chunk store."""
    objects = repo.object_store
    original = objects.get_raw

    def get_raw(name: bytes) -> tuple[int, bytes]:
        try:
            return original(ObjectID(name))
        except KeyError:
            ref = bases.get(bytes(name)) or bases.get(bytes(name).hex().encode())
            if ref is None:
                raise
            return BLOB_TYPE, store.content.chunks.read_chunk(ref, check=True)

    objects.get_raw = get_raw  # type: ignore[method-assign]


_fetch_content = fetch_content  # the name cache.py used
