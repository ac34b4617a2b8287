"""Cutting large content into chunks (and derived regions): one pass over a mapped file.

Content-defined chunking is FastCDC 2020 from ``pyfastcdc`` (Cython; measured
here at ~2.8 GB/s on a buffer, ~1.4 GB/s on a stream, against ~1.0 GB/s for
the ``fastcdc`` package's Cython path, which also has no streaming API).
Cut points depend on the bytes alone, so an edit moves only the chunks
around it and everything else deduplicates against earlier versions.

The sha256 of the content is computed over exactly the bytes the manifest
re-makes (chunk copies and re-made streams), never over the file again, so
a file changed while being read cannot yield a manifest that lies.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import pyfastcdc

from reprobuild.store import derive
from reprobuild.store.chunks import ChunkStore
from reprobuild.store.manifest import CDC_AVG, CDC_MAX, CDC_MIN, ChunkRef, Derived, Segment

# gzip is re-made on every CPU (gzip-blocks; the level 9 single stream of older
# stores at ~20-40 MB/s): OCI layers are kept as their tars.
# zstd level 19 re-makes at a few MB/s, and on every read: not worth it by
# default (a zstd output costs its compressed size per variant). Readers
# handle every method, whatever a manifest (or a remote's) holds.
DERIVE_BY_DEFAULT: tuple[str, ...] = ("gzip",)  # families: gzip-blocks too (derive.family)


def cutter() -> pyfastcdc.FastCDC:
    """A chunker with the store's parameters (one per call: they are not thread-safe)."""
    return pyfastcdc.FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)


def chunk_bytes(data: bytes | memoryview) -> Iterator[memoryview]:
    """The content-defined chunks of ``data`` (for tests and small tools)."""
    for c in cutter().cut_buf(data):
        yield c.data


def chunk_file(
    chunks: ChunkStore, path: Path, *, methods: tuple[str, ...] = DERIVE_BY_DEFAULT
) -> tuple[tuple[Segment, ...], str, int]:
    """Store ``path`` as chunks; returns (segments, sha256, size) of what they make.

    ``methods``: the compressed regions to keep as their decompressed chunks.
    """
    with open(path, "rb") as f:
        extents = _data_extents(f.fileno())
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        buf = memoryview(mm)
        try:
            return _chunk_buffer(chunks, buf, methods, extents)
        finally:
            # after an error (a full disk) a traceback frame may still hold a view of
            # the map: then it is unmapped when collected, and the error is what counts
            with contextlib.suppress(BufferError):
                buf.release()
                mm.close()


def chunk_buffer(
    chunks: ChunkStore, buf: memoryview, methods: tuple[str, ...] = DERIVE_BY_DEFAULT
) -> tuple[tuple[Segment, ...], str, int]:
    """Store an in-memory buffer as chunks (no temp copy: a full disk needs no room twice)."""
    return _chunk_buffer(chunks, buf, methods)


def _data_extents(fd: int) -> list[tuple[int, int]] | None:
    """The (start, end) ranges of a sparse file that hold data (None: all of it)."""
    size = os.fstat(fd).st_size
    extents = []
    pos = 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            pos = end
    except OSError:
        return None
    return extents


def _chunk_buffer(
    chunks: ChunkStore,
    buf: memoryview,
    methods: tuple[str, ...],
    extents: list[tuple[int, int]] | None = None,
) -> tuple[tuple[Segment, ...], str, int]:
    h = hashlib.sha256()
    segments: list[Segment] = []
    pos = 0
    found = derive.candidates(buf, extents) if methods else iter(())
    for start, method, params in found:
        if derive.family(method) not in methods or start < pos:
            continue
        if len(buf) - start < derive._MIN_REGION:
            continue
        trial = h.copy()
        before = _plain(chunks, buf[pos:start], trial)
        region = _try_region(chunks, buf, start, method, params, trial)
        if region is None:
            continue  # the bytes before it are cut again with what follows
        segments.extend(before)
        h = trial  # it hashed the re-made stream, equal byte for byte to the original
        derived, end = region
        segments.append(derived)
        pos = end
    segments.extend(_plain(chunks, buf[pos:], h))
    return tuple(segments), h.hexdigest(), len(buf)


def _plain(chunks: ChunkStore, buf: memoryview, h: hashlib._Hash) -> list[ChunkRef]:
    out = []
    zero: dict[int, ChunkRef] = {}
    for c in cutter().cut_buf(buf):
        data = bytes(c.data)
        h.update(data)
        # A disk image is mostly zeros: its zero chunks are one chunk (per length),
        # hashed and stored once here instead of once per occurrence.
        if data[:1] == b"\0" and data == _ZEROS[: len(data)]:
            ref = zero.get(len(data))
            if ref is None:
                ref = zero[len(data)] = chunks.put_chunk(data)
            out.append(ref)
        else:
            out.append(chunks.put_chunk(data))
    return out


_ZEROS = bytes(CDC_MAX)


def _try_region(
    chunks: ChunkStore,
    buf: memoryview,
    start: int,
    method: str,
    params: dict[str, str],
    hasher: hashlib._Hash,
) -> tuple[Derived, int] | None:
    """Keep ``buf[start:]``'s stream as its decompressed chunks if re-making it matches."""
    try:
        reader = derive.RegionReader(buf, start, method, params, hasher)
        inner = [chunks.put_chunk(bytes(c.data)) for c in cutter().cut_stream(reader)]
    except derive.Mismatch:
        return None
    except (ValueError, OSError, MemoryError):
        return None
    if reader.end < 0 or reader.end - start < derive._MIN_REGION:
        return None
    return Derived(method, reader.end - start, tuple(inner), params), reader.end
