"""Compressed tarballs of a canonical tree, identical on every run.

Each compressor is pinned to settings that leave nothing to the clock, the
host or the input's name:

* ``gzip``: :class:`reprobuild.export.gzipblocks.BlockDeflater` (pigz's
  scheme: 1 MiB blocks deflated in parallel at level 6, each primed with the
  32 KiB before it) inside a header written here: no file name, mtime 0,
  XFL 0, OS 255 (unknown), so neither the host OS nor Python's :mod:`gzip`
  defaults shape it. The bytes do not depend on the number of threads.
  (Before, one zlib stream at level 9: 3.5 times ``gzip -n``'s time; every
  gzip digest changed once, see the README.)
* ``zstd``: the :mod:`zstandard` binding at level 19, single-threaded, no
  dictionary, content size and checksum written. Its bytes depend on the
  bundled libzstd version, which :func:`compressor_version` reports so a
  step key can include it (DESIGN.md section 7). (libzstd's multi-threaded
  mode gives frames that do not depend on the worker count, but other
  frames than single-threaded mode, and on this project's loaded 2-CPU
  machine it was 1.3 times slower than ``zstd -19``: not taken.)
* ``xz``: :mod:`lzma` preset 9, CRC64 check, single-threaded (the
  multi-threaded encoder splits blocks by thread count).
* ``none``: the canonical tar itself.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import struct
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal

import zstandard

from reprobuild.errors import ReprobuildError
from reprobuild.export import gzipblocks

__all__ = ["Compression", "ExportError", "compress_file", "compressor_version", "export_tarball"]

Compression = Literal["none", "gzip", "zstd", "xz"]

GZIP_LEVEL: Final = gzipblocks.LEVEL
ZSTD_LEVEL: Final = 19
XZ_PRESET: Final = 9
_CHUNK: Final = 1 << 20


class ExportError(ReprobuildError):
    """An artefact cannot be written as asked."""


def compressor_version(compression: Compression) -> str:
    """What shapes the compressed bytes besides the input, for step keys."""
    if compression == "zstd":
        version = ".".join(str(part) for part in zstandard.ZSTD_VERSION)
        return f"zstd {version} level {ZSTD_LEVEL}"
    if compression == "gzip":
        return gzipblocks.describe()
    if compression == "xz":
        return f"liblzma preset {XZ_PRESET} crc64"
    return "none"


class _Hashing:
    """Write-through to a file while hashing what is written."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.out.write(data)
        return len(data)


def _gzip(source: BinaryIO, out: _Hashing) -> None:
    out.write(gzipblocks.HEADER)
    compressor = gzipblocks.BlockDeflater()
    crc = 0
    size = 0
    while chunk := source.read(_CHUNK):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
        out.write(compressor.compress(chunk))
    out.write(compressor.flush())
    out.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))


def zstd_params(size: int) -> zstandard.ZstdCompressionParameters:
    """The pinned frame settings."""
    return zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL,
        source_size=size,
        write_checksum=True,
        write_content_size=True,
        threads=0,
    )


def _zstd(source: BinaryIO, out: _Hashing, size: int) -> None:
    params = zstd_params(size)
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj(size=size)
    while chunk := source.read(_CHUNK):
        out.write(compressor.compress(chunk))
    out.write(compressor.flush())  # ends the one frame: content size and checksum included


def _xz(source: BinaryIO, out: _Hashing) -> None:
    compressor = lzma.LZMACompressor(
        format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=XZ_PRESET
    )
    while chunk := source.read(_CHUNK):
        out.write(compressor.compress(chunk))
    out.write(compressor.flush())


class _HashingSource:
    """Read-through that hashes what the compressor reads (an OCI layer's DiffID)."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.hash.update(data)
        return data


def export_tarball(canonical_tar: Path, dest: Path, compression: Compression) -> str:
    """Compress *canonical_tar* into *dest*; return ``sha256:<hex>`` of *dest*.

    *dest* is written under a temporary name and renamed, so a reader never
    sees a partial file.
    """
    return compress_file(canonical_tar, dest, compression)[0]


def compress_file(canonical_tar: Path, dest: Path, compression: Compression) -> tuple[str, str]:
    """:func:`export_tarball`, also returning the ``sha256:<hex>`` of what it read
    (one pass over the input instead of two)."""
    if compression not in ("none", "gzip", "zstd", "xz"):
        raise ExportError(f"unknown compression {compression!r} (none, gzip, zstd or xz)")
    tmp = dest.with_name(dest.name + ".partial")
    size = os.stat(canonical_tar).st_size
    try:
        with open(canonical_tar, "rb") as plain, open(tmp, "wb") as raw:
            source: Any = _HashingSource(plain)
            out = _Hashing(raw)
            if compression == "none":
                while chunk := source.read(_CHUNK):
                    out.write(chunk)
            elif compression == "gzip":
                _gzip(source, out)
            elif compression == "zstd":
                _zstd(source, out, size)
            else:
                _xz(source, out)
            while source.read(_CHUNK):  # a compressor that stopped early: hash the rest
                pass
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return "sha256:" + out.hash.hexdigest(), "sha256:" + source.hash.hexdigest()
