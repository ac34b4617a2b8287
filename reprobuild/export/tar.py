"""Compressed tarballs of a canonical tree, identical on every run.

Each compressor is pinned to settings that leave nothing to the clock, the
host or the input's name:

* ``gzip``: :mod:`zlib` at level 9 inside a header written here: no file
  name, mtime 0, XFL 2 (maximum compression), OS 255 (unknown), so neither
  the host OS nor Python's :mod:`gzip` defaults shape it. (zlib's output for
  a given level is stable across its releases in practice; zlib 1.2.13 here.)
* ``zstd``: the :mod:`zstandard` binding at level 19, single-threaded, no
  dictionary, content size and checksum written. Its bytes depend on the
  bundled libzstd version, which :func:`compressor_version` reports so a
  step key can include it (DESIGN.md section 7).
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
from typing import BinaryIO, Final, Literal

import zstandard

from reprobuild.errors import ReprobuildError

__all__ = ["Compression", "ExportError", "compressor_version", "export_tarball"]

Compression = Literal["none", "gzip", "zstd", "xz"]

GZIP_LEVEL: Final = 9
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
        return f"zlib {zlib.ZLIB_RUNTIME_VERSION} level {GZIP_LEVEL}"
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
    out.write(b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff")
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 9)
    crc = 0
    size = 0
    while chunk := source.read(_CHUNK):
        crc = zlib.crc32(chunk, crc)
        size += len(chunk)
        out.write(compressor.compress(chunk))
    out.write(compressor.flush())
    out.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))


def _zstd(source: BinaryIO, out: _Hashing, size: int) -> None:
    params = zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL, source_size=size, write_checksum=True, write_content_size=True, threads=0
    )
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


def export_tarball(canonical_tar: Path, dest: Path, compression: Compression) -> str:
    """Compress *canonical_tar* into *dest*; return ``sha256:<hex>`` of *dest*.

    *dest* is written under a temporary name and renamed, so a reader never
    sees a partial file.
    """
    if compression not in ("none", "gzip", "zstd", "xz"):
        raise ExportError(f"unknown compression {compression!r} (none, gzip, zstd or xz)")
    tmp = dest.with_name(dest.name + ".partial")
    size = os.stat(canonical_tar).st_size
    try:
        with open(canonical_tar, "rb") as source, open(tmp, "wb") as raw:
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
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return "sha256:" + out.hash.hexdigest()
