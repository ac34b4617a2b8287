"""gzip made on every CPU, identical whatever the number of threads (pigz's scheme).

One zlib stream is sequential: compressing a 170 MB layer at level 9 took
3.5 times as long as ``tar | gzip -n``. Here the input is cut into blocks of
:data:`BLOCK` bytes, each deflated on its own (at gzip's default level 6,
memLevel 8) with the 32 KiB before it as a preset dictionary, and every
block but the last ends with a sync flush (an empty stored block), which
leaves the stream byte-aligned so the next block's output can follow it
directly. This is what ``pigz`` does; the result is one ordinary deflate
stream any gunzip reads. A block's bytes depend only on its input, the
window before it and the settings, never on which thread made it or how
many there were, so the output is the same with one thread or sixteen.

The body is raw deflate: :func:`reprobuild.export.tar.export_tarball` adds
the gzip header (no name, mtime 0, XFL 0, OS 255) and trailer, and the store
re-makes such streams from their decompressed bytes with the same class
(:mod:`reprobuild.store.derive`, method ``gzip-blocks``).
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

BLOCK: Final = 1 << 20
WINDOW: Final = 32768
LEVEL: Final = 6
MEM_LEVEL: Final = 8
HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, XFL 0, OS 255


SCHEME: Final = f"gzip-blocks {BLOCK} level {LEVEL} mem {MEM_LEVEL}"  # in step keys


def describe() -> str:
    """What shapes the bytes besides the input, with the zlib in use (for reports).

    Step keys take :data:`SCHEME` alone: deflate's output for given settings
    has not changed across zlib releases in practice, and a key must not
    differ between two machines that make the same bytes.
    """
    return f"{SCHEME} zlib {zlib.ZLIB_RUNTIME_VERSION}"


def _deflate(block: bytes, window: bytes, final: bool) -> bytes:
    if window:
        comp = zlib.compressobj(
            LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, window
        )
    else:
        comp = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, MEM_LEVEL)
    return comp.compress(block) + comp.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class BlockDeflater:
    """A raw deflate compressor with zlib's ``compress``/``flush`` interface.

    Blocks are compressed on up to *threads* threads (zlib releases the GIL);
    at most twice that many are in flight, so memory stays bounded. A block
    is only compressed once the next byte is known to exist or ``flush``
    says there is none: the last block is the one that ends the stream.
    """

    def __init__(self, threads: int | None = None) -> None:
        self._threads = default_threads() if threads is None else max(1, threads)
        self._pool = ThreadPoolExecutor(self._threads) if self._threads > 1 else None
        self._pending = bytearray()
        self._window = b""
        self._queue: deque[Future[bytes]] = deque()
        self._finished = False

    def _submit(self, block: bytes, final: bool) -> None:
        window, self._window = self._window, block[-WINDOW:]
        if self._pool is None:
            done: Future[bytes] = Future()
            done.set_result(_deflate(block, window, final))
            self._queue.append(done)
        else:
            self._queue.append(self._pool.submit(_deflate, block, window, final))

    def _ready(self, *, everything: bool) -> bytes:
        out = []
        limit = 2 * self._threads
        while self._queue and (everything or len(self._queue) > limit or self._queue[0].done()):
            out.append(self._queue.popleft().result())
        return b"".join(out)

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._finished:
            raise ValueError("compress after flush")
        self._pending += data
        while len(self._pending) > BLOCK:
            block = bytes(self._pending[:BLOCK])
            del self._pending[:BLOCK]
            self._submit(block, final=False)
        return self._ready(everything=False)

    def flush(self) -> bytes:
        """Compress what is left as the final block and return all remaining output."""
        if self._finished:
            return b""
        self._finished = True
        self._submit(bytes(self._pending), final=True)
        self._pending = bytearray()
        try:
            return self._ready(everything=True)
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __del__(self) -> None:
        self.close()
