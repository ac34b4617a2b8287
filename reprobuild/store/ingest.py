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
import hashlib
import mmap
from collections.abc import Callable, Iterator
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
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        buf = memoryview(mm)

        def release(upto: int) -> None:
            """Drop the mapped pages before ``upto`` (read already; a page read again
            faults back in from the file): a large file is never resident whole.

            Always from the start: the candidate scan passes over the whole file
            before the chunking pass reads it again from the start."""
            upto -= upto % mmap.PAGESIZE
            if upto > 0:
                mm.madvise(mmap.MADV_DONTNEED, 0, upto)

        try:
            return _chunk_buffer(chunks, buf, methods, release)
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


_RELEASE_EVERY = 32 << 20


def _chunk_buffer(
    chunks: ChunkStore,
    buf: memoryview,
    methods: tuple[str, ...],
    release: Callable[[int], None] | None = None,
) -> tuple[tuple[Segment, ...], str, int]:
    """``release(offset)``: the bytes before ``offset`` will not be read again."""
    h = hashlib.sha256()
    segments: list[Segment] = []
    pos = 0
    found = derive.candidates(buf, release) if methods else iter(())
    for start, method, params in found:
        if derive.family(method) not in methods or start < pos:
            continue
        if len(buf) - start < derive._MIN_REGION:
            continue
        trial = h.copy()
        before = _plain(chunks, buf[pos:start], trial, release, pos)
        region = _try_region(chunks, buf, start, method, params, trial)
        if region is None:
            continue  # the bytes before it are cut again with what follows
        segments.extend(before)
        h = trial  # it hashed the re-made stream, equal byte for byte to the original
        derived, end = region
        segments.append(derived)
        pos = end
    segments.extend(_plain(chunks, buf[pos:], h, release, pos))
    return tuple(segments), h.hexdigest(), len(buf)


def cut_windows(buf: memoryview, window: int = _RELEASE_EVERY) -> Iterator[memoryview]:
    """The chunks ``cutter().cut_buf(buf)`` gives, cut ``window`` bytes at a time.

    FastCDC decides each cut from the chunk's own bytes (its hash starts again
    at every chunk), so cutting again from the start of a window's last chunk,
    which the window's end may have cut short, gives the very same chunks, and
    only a window of a large mapped file is touched at once.
    """
    pos, size = 0, len(buf)
    while pos < size:
        end = min(size, pos + max(window, 2 * CDC_MAX))
        start = pos
        for c in cutter().cut_buf(buf[start:end]):
            if end < size and start + c.offset + c.length == end:
                break  # perhaps cut short by the window: cut again from its start
            pos = start + c.offset + c.length
            yield c.data


def _plain(
    chunks: ChunkStore,
    buf: memoryview,
    h: hashlib._Hash,
    release: Callable[[int], None] | None = None,
    base: int = 0,
) -> list[ChunkRef]:
    out = []
    zero: dict[int, ChunkRef] = {}
    done = last = 0
    for piece in cut_windows(buf):
        data = bytes(piece)
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
        done += len(data)
        if release is not None and done - last >= _RELEASE_EVERY:
            # dropping a read-only file's pages is always safe: read again, they fault in
            release(base + done)
            last = done
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
