"""What a push puts on the wire: carriers in batches, their objects, thin packs.

push (transport.py) decides *which* carriers a remote lacks; this module makes
the git objects and the pack that carry them, leaving out chunk blobs the
remote already has, and holds a batch to PUSH_BATCH_BYTES so memory stays
bounded whatever the size of the store.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from dulwich.object_format import DEFAULT_OBJECT_FORMAT
from dulwich.object_store import MissingObjectFinder
from dulwich.objects import ObjectID, ShaFile
from dulwich.pack import UnpackedObject, full_unpacked_object, pack_object_chunks
from dulwich.refs import Ref

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.redact import redact
from reprobuild.store.carriers import (
    PIECE_SIZE,
    Carrier,
    local_carrier,
)
from reprobuild.store.chunks import git_blob_id
from reprobuild.store.records import Blob
from reprobuild.store.remotes import (
    RemoteLimits,
    remote_error,
)

if TYPE_CHECKING:
    from reprobuild.store.core import Store

BLOB_TYPE = 3
_WIRE_PIECE = 512 << 10
PUSH_BATCH_BYTES = 256 << 20


def set_refs(
    refs: dict[Ref, ObjectID],
) -> Callable[[dict[Ref, ObjectID]], dict[Ref, ObjectID]]:
    def update_refs(remote: dict[Ref, ObjectID]) -> dict[Ref, ObjectID]:
        return {r: s for r, s in refs.items() if r not in remote}

    return update_refs


def batches(store: Store, blobs: list[Blob], known: set[str]) -> Iterator[list[Carrier]]:
    """Carriers in groups of about PUSH_BATCH_BYTES of new bytes to send."""
    batch: list[Carrier] = []
    size = 0
    planned = set(known)
    for blob in blobs:
        carrier = local_carrier(store, blob)
        if carrier.chunks:
            new = [c for s, c in carrier.chunks.items() if s not in planned]
            planned.update(carrier.chunks)
            cost = sum(c.size for c in new)
        else:
            cost = blob.size
        if batch and size + cost > PUSH_BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(carrier)
        size += cost
    if batch:
        yield batch


def _wire_object(data: bytes, sha: ObjectID) -> UnpackedObject:
    """A pack entry for one blob, deflated at level 1, or stored if it won't shrink.

    Much content (.deb, .zst, squashfs) is already compressed; zlib spends
    ~20 s/GB failing to shrink it, so a 64 KiB sample decides.
    """
    sample = data[:65536]
    level = 1 if sample and len(zlib.compress(sample, 1)) < 0.9 * len(sample) else 0
    u = UnpackedObject(BLOB_TYPE, sha=bytes.fromhex(sha.decode()), decomp_chunks=[data])
    packed = b"".join(
        pack_object_chunks(
            BLOB_TYPE, [data], object_format=DEFAULT_OBJECT_FORMAT, compression_level=level
        )
    )
    # dulwich's HTTP server refuses chunks over 1 MiB: hand the pack writer small pieces
    u.comp_chunks = [packed[i : i + _WIRE_PIECE] for i in range(0, len(packed), _WIRE_PIECE)]
    return u


def _carrier_objects(
    store: Store, carriers: list[Carrier], known: set[str], exclude: set[ObjectID]
) -> tuple[int, Callable[[], Iterator[UnpackedObject]]]:
    """How many objects the carriers add to a pack, and a generator of them."""
    plan: list[tuple[ObjectID, Any]] = []
    seen: set[ObjectID] = set(exclude)

    def add(sha: ObjectID, how: Any) -> None:
        if sha not in seen:
            seen.add(sha)
            plan.append((sha, how))

    for c in carriers:
        add(c.commit.id, c.commit)
        add(c.tree.id, c.tree)
        for extra in c.extra:
            add(extra.id, extra)
        if c.chunks:
            for sha, ref in c.chunks.items():
                if sha not in known:
                    add(ObjectID(ref.git.encode()), ref)
        else:
            for i, piece_id in enumerate(c.pieces):
                add(piece_id, (c.blob, i))

    def generate() -> Iterator[UnpackedObject]:
        chunks = store.content.chunks
        for sha, how in plan:
            if isinstance(how, ShaFile):
                yield full_unpacked_object(how)
                continue
            if isinstance(how, tuple):
                blob, index = how
                data = _piece(store, blob, index)
            else:
                try:
                    data = chunks.read_chunk(how, check=True)
                except (IntegrityError, StoreError) as exc:
                    raise IntegrityError(
                        f"refusing to push corrupt content: {exc}",
                        hint="run `reprobuild store verify`",
                    ) from None
            if git_blob_id(data) != sha.decode():
                raise IntegrityError(f"content changed while being pushed (object {sha.decode()})")
            yield _wire_object(data, sha)

    return len(plan), generate


def _piece(store: Store, blob: Blob, index: int) -> bytes:
    """Piece ``index`` of whole content (format-1 carriers: small or unmigrated objects)."""
    if store.content.is_whole(blob.sha256):
        with open(store.content.path(blob.sha256), "rb") as f:
            f.seek(index * PIECE_SIZE)
            return f.read(PIECE_SIZE)
    with store.open_blob(blob.sha256) as f:
        for _ in range(index):
            f.read(PIECE_SIZE)
        return f.read(PIECE_SIZE)


def send(
    store: Store,
    client: Any,
    path: str,
    url: str,
    update_refs: Callable[[dict[Ref, ObjectID]], dict[Ref, ObjectID]],
    carriers: list[Carrier],
    known: set[str],
) -> int:
    """One send_pack: the wanted native objects plus the carriers; returns blob bytes sent."""
    sent = 0

    def generate_pack_data(
        have: Any,
        want: Any,
        *,
        ofs_delta: bool = False,
        progress: Callable[[bytes], None] | None = None,
    ) -> tuple[int, Iterator[UnpackedObject]]:
        nonlocal sent
        objects = store.repo.object_store
        carrier_ids = {c.commit.id for c in carriers}
        native_want = [w for w in want if w not in carrier_ids]
        native_have = [h for h in have if h in objects]
        finder = MissingObjectFinder(objects, haves=native_have, wants=native_want)
        native = [sha for sha, _hint in finder]
        count, carried = _carrier_objects(store, carriers, known, set(native))

        def records() -> Iterator[UnpackedObject]:
            nonlocal sent
            for sha in native:
                yield full_unpacked_object(objects[sha])
            for u in carried():
                sent += sum(len(c) for c in u.decomp_chunks or ())
                yield u

        return len(native) + count, records()

    try:
        result = client.send_pack(path, update_refs, generate_pack_data)
    except (IntegrityError, StoreError):
        raise
    except Exception as exc:
        raise remote_error("push to", url, exc, RemoteLimits.from_env()) from None
    status = getattr(result, "ref_status", None) or {}
    failed = {bytes(r).decode(): msg for r, msg in status.items() if msg}
    if failed:
        raise StoreError(
            f"push to {redact(url)}: the remote refused {len(failed)} ref(s): "
            + "; ".join(f"{r}: {m}" for r, m in sorted(failed.items()))
        )
    return sent


