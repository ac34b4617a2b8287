"""Compressed regions kept as what they decompress to, and re-made on read.

reprobuild's own gzip and zstd streams (OCI layers, compressed tarballs) are
made by pinned compressors (:mod:`reprobuild.export.tar`): parallel deflate
blocks behind a fixed header (method ``gzip-blocks``, see
:mod:`reprobuild.export.gzipblocks`; XFL 0 in the header) and zstd level 19
with content size and checksum (``zstd``); in content written before
gzip-blocks, one zlib level 9 raw deflate stream (method ``gzip``, XFL 2).
Both gzip methods are one *family* for the choice of what to derive
(:func:`family`). Given the
decompressed bytes, the same compressor re-makes the stream byte for byte,
so the store keeps the decompressed bytes (as chunks, which deduplicate
across variants) and re-makes the stream on read.

A region is only kept this way after it was re-made at ingest and compared
byte for byte with the original (:func:`verify_region`); anything else (another
tool's gzip, another level) stays as ordinary chunks. Every read re-checks the
content's sha256, so a compressor whose output changed (a new zlib or libzstd)
is caught as an integrity error on read, never served.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import zstandard

from reprobuild.export import gzipblocks

GZIP_LEVEL = 9  # method "gzip": the single-stream gzip reprobuild wrote before gzip-blocks
ZSTD_LEVEL = 19  # method "zstd": single-threaded frames

ALIGN = 512  # regions are looked for where tar members start (OCI archives, tarballs)
_GZIP_MAGIC = b"\x1f\x8b\x08"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_HEADERS = {
    gzipblocks.HEADER: "gzip-blocks",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff": "gzip",  # level 9, before gzip-blocks
}
_PIECE = 1 << 20
_MIN_REGION = 4096  # smaller streams are not worth a derivation


class Mismatch(Exception):
    """The re-made stream differs from the original: keep the region as chunks."""


def family(method: str) -> str:
    """``gzip`` or ``zstd``: what a caller enables derivations by."""
    return method.split("-", 1)[0]


def _zstd_params(size: int) -> Any:
    return zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL,
        source_size=size,
        write_checksum=True,
        write_content_size=True,
        threads=0,
    )


def gzip_params(header: bytes) -> dict[str, str]:
    return {"header": header.hex()}


def remake(
    method: str, params: dict[str, str] | Any, inner_size: int, pieces: Iterable[bytes]
) -> Iterator[bytes]:
    """The compressed stream of ``pieces`` (``inner_size`` bytes in all)."""
    if method in ("gzip", "gzip-blocks"):
        yield bytes.fromhex(params["header"])
        comp = _gzip_body(method)
        crc = 0
        for piece in pieces:
            crc = zlib.crc32(piece, crc)
            if out := comp.compress(piece):
                yield out
        yield comp.flush()
        yield struct.pack("<II", crc & 0xFFFFFFFF, inner_size & 0xFFFFFFFF)
    elif method == "zstd":
        cparams = _zstd_params(inner_size)
        zcomp = zstandard.ZstdCompressor(compression_params=cparams).compressobj(size=inner_size)
        for piece in pieces:
            if out := zcomp.compress(piece):
                yield out
        yield zcomp.flush()
    else:
        raise ValueError(f"unknown derivation {method!r}")


def _gzip_body(method: str) -> Any:
    if method == "gzip-blocks":
        return gzipblocks.BlockDeflater()
    return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 9)


def candidates(
    buf: memoryview, release: Callable[[int], None] | None = None
) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Aligned offsets where a pinned-compressor stream may start, in order.

    The buffer is scanned in windows; ``release(offset)`` is told after each
    that the bytes before ``offset`` are no longer needed by the scan (a mapped
    file then drops their pages: a 1 GiB file is never resident at once).
    """
    whole: Any = buf.obj
    data = whole if hasattr(whole, "find") and len(whole) == buf.nbytes else bytes(buf)
    hits: list[tuple[int, str, dict[str, str]]] = []
    overlap = max(len(_GZIP_MAGIC), len(_ZSTD_MAGIC)) - 1
    for window in range(0, max(len(data), 1), _SCAN_WINDOW):
        end = min(len(data), window + _SCAN_WINDOW + overlap)
        for magic, method in ((_GZIP_MAGIC, "gzip"), (_ZSTD_MAGIC, "zstd")):
            pos = window
            while (pos := _find(data, magic, pos, end)) >= 0:
                if pos >= window + _SCAN_WINDOW:
                    break  # the next window finds it
                if pos % ALIGN == 0:
                    if method == "gzip":
                        header = bytes(buf[pos : pos + 10])
                        # only reprobuild's own headers (OS 255): another tool's gzip
                        # (every .gz member of a tar) never re-makes, and trying costs
                        kind = _GZIP_HEADERS.get(header)
                        if kind is not None:
                            hits.append((pos, kind, gzip_params(header)))
                    else:
                        hits.append((pos, method, {}))
                pos += 1
        if release is not None:
            release(window)
    yield from sorted(hits)


_SCAN_WINDOW = 64 << 20


def _find(data: Any, magic: bytes, start: int, end: int | None = None) -> int:
    return int(data.find(magic, start) if end is None else data.find(magic, start, end))


class RegionReader(io.RawIOBase):
    """Decompresses the stream at ``buf[start:]``, re-making it as it goes.

    Reading yields the decompressed bytes (to be chunked); each piece is also
    fed to the pinned compressor and its output compared with the original,
    so the first differing byte raises :class:`Mismatch`. At EOF, :attr:`end`
    is where the region ends in ``buf``.
    """

    def __init__(
        self, buf: memoryview, start: int, method: str, params: dict[str, str], hasher: Any = None
    ) -> None:
        super().__init__()
        self.hasher = hasher  # fed with the re-made stream (equal to the original)
        self._buf = buf
        self._method = method
        self._pos = start  # next compressed input byte to decompress
        self._cmp = start  # next original byte to compare with the re-made stream
        self.inner_size = 0
        self.end = -1
        self._pending = memoryview(b"")
        self._done = False
        self._gzip = method in ("gzip", "gzip-blocks")
        if self._gzip:
            if bytes(buf[start : start + 10]) != bytes.fromhex(params["header"]):
                raise Mismatch("gzip header differs")
            if hasher is not None:
                hasher.update(bytes.fromhex(params["header"]))
            self._pos += 10
            self._cmp += 10
            self._dec: Any = zlib.decompressobj(-zlib.MAX_WBITS)
            self._comp: Any = _gzip_body(method)
            self._crc = 0
        else:
            fp = zstandard.get_frame_parameters(bytes(buf[start : start + 18]))
            if fp.content_size in (0, zstandard.CONTENTSIZE_UNKNOWN) or not fp.has_checksum:
                raise Mismatch("zstd frame without content size or checksum")
            self._size = int(fp.content_size)
            cparams = _zstd_params(self._size)
            self._dec = zstandard.ZstdDecompressor().decompressobj()
            self._comp = zstandard.ZstdCompressor(compression_params=cparams).compressobj(
                size=self._size
            )

    def readable(self) -> bool:
        return True

    def _check(self, made: bytes) -> None:
        if not made:
            return
        orig = self._buf[self._cmp : self._cmp + len(made)]
        if orig != made:
            raise Mismatch("re-made stream differs")
        self._cmp += len(made)
        if self.hasher is not None:
            self.hasher.update(made)

    def _next_piece(self) -> bytes:
        """Decompress the next piece; at the stream's end, finish the comparison."""
        while True:
            if self._pos >= len(self._buf):
                raise Mismatch("truncated stream")
            src = bytes(self._buf[self._pos : self._pos + _PIECE])
            try:
                out: bytes = self._dec.decompress(src)
            except (zlib.error, zstandard.ZstdError) as exc:
                raise Mismatch(str(exc)) from None
            unused = len(self._dec.unused_data) if self._dec.eof else 0
            self._pos += len(src) - unused
            if out:
                self.inner_size += len(out)
                if self._gzip:
                    self._crc = zlib.crc32(out, self._crc)
                self._check(self._comp.compress(out))
            if self._dec.eof:
                self._finish()
                return out
            if out:
                return out

    def _finish(self) -> None:
        self._check(self._comp.flush())
        if self._gzip:
            trailer = struct.pack("<II", self._crc & 0xFFFFFFFF, self.inner_size & 0xFFFFFFFF)
            self._check(trailer)
        elif self.inner_size != self._size:
            raise Mismatch("zstd frame size differs from its header")
        if self._cmp != self._pos + (8 if self._gzip else 0):
            raise Mismatch("re-made stream has a different length")
        self.end = self._cmp
        self._done = True

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        while not self._pending:
            if self._done:
                return 0
            self._pending = memoryview(self._next_piece())
        n = min(len(out), len(self._pending))
        out[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


__all__ = ["ALIGN", "_MIN_REGION", "Mismatch", "RegionReader", "candidates", "family", "remake"]
