"""cpio "newc" archives (initramfs format) written directly from a canonical tar.

No external tool and no extraction: the archive is a function of the tar's
bytes alone. Conventions, those of the Linux kernel's ``usr/gen_init_cpio.c``
and of GNU cpio:

* Members in the canonical tar's order (sorted, parents first); names
  without ``./`` (the root is ``.``, carrying the root's mode and owner).
* Inode numbers assigned sequentially from 1 in that order, one per inode
  (hard links share theirs); ``dev`` 0:0 everywhere, ``rdev`` only for
  device nodes. Directory link counts are 2 + subdirectories, file link
  counts the number of names.
* Hard links: every name but the last is written with size 0 and the data
  goes with the *last* one (what GNU cpio writes and both GNU cpio and the
  kernel's initramfs unpacker expect).
* mtime ``min(mtime, epoch)``; symlink targets stored as the data; the
  ``check`` field 0; names NUL-terminated and header+name and data padded to
  4 bytes; ``TRAILER!!!`` (nlink 1) and zero padding to a 512-byte block.
* Extended attributes (e.g. ``security.capability``) cannot be carried by
  newc and are dropped; sizes and ids above 2**32-1 are refused.

Compression reuses :func:`reprobuild.export.tar.export_tarball` (fixed-level
gzip without timestamp, single-threaded zstd, xz). For a kernel initramfs
prefer gzip or zstd: the kernel's xz decoder wants CRC32 rather than xz's
CRC64 default (it skips the check if built with ``XZ_DEC_ANY_CHECK``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from reprobuild.export.tar import Compression, ExportError, export_tarball
from reprobuild.export.tools import iter_canonical_tar, staged_output
from reprobuild.tree import TarEntry, TarReader

__all__ = ["CpioArchive", "export_cpio", "write_newc"]

_MAGIC: Final = b"070701"
_LIMIT: Final = 0xFFFFFFFF
_CHUNK: Final = 1 << 20
_TYPES: Final = {
    b"0": stat.S_IFREG,
    b"5": stat.S_IFDIR,
    b"2": stat.S_IFLNK,
    b"3": stat.S_IFCHR,
    b"4": stat.S_IFBLK,
    b"6": stat.S_IFIFO,
}


@dataclass(frozen=True)
class CpioArchive:
    """A written cpio archive."""

    path: Path
    sha256: str
    size: int
    uncompressed_size: int
    members: int
    compression: str


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(
    name: bytes,
    *,
    ino: int,
    mode: int,
    uid: int,
    gid: int,
    nlink: int,
    mtime: int,
    size: int,
    rdev: tuple[int, int] = (0, 0),
) -> bytes:
    for what, value in (("size", size), ("uid", uid), ("gid", gid), ("mtime", mtime)):
        if not 0 <= value <= _LIMIT:
            raise ExportError(f"cpio member {name!r}: {what} {value} does not fit the newc format")
    fields = (ino, mode, uid, gid, nlink, mtime, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    head = _MAGIC + b"".join(b"%08X" % f for f in fields) + name + b"\0"
    return head + _pad4(len(head))


@dataclass
class _Plan:
    """What the first pass learns: link counts and which name is the last link."""

    nlink: dict[bytes, int]  # canonical (first) path of an inode -> names
    last_name: dict[bytes, bytes]  # canonical path -> last name in order
    subdirs: dict[bytes, int]


def _parent(rel: bytes) -> bytes:
    return rel.rpartition(b"/")[0]


def _plan(canonical_tar: Path) -> _Plan:
    plan = _Plan({}, {}, {})
    for rel, entry in iter_canonical_tar(canonical_tar):
        if entry.type == b"5":
            plan.subdirs.setdefault(rel, 0)
            if rel:
                plan.subdirs[_parent(rel)] = plan.subdirs.get(_parent(rel), 0) + 1
        elif entry.type == b"1":
            target = entry.linkname.removeprefix(b"./").strip(b"/")
            if target not in plan.nlink:
                raise ExportError(f"hard link {rel!r} names {target!r}, not an earlier member")
            plan.nlink[target] += 1
            plan.last_name[target] = rel
        else:
            plan.nlink[rel] = 1
            plan.last_name[rel] = rel
    return plan


def _copy(stream: BinaryIO, offset: int, size: int, out: BinaryIO) -> None:
    here = stream.tell()
    stream.seek(offset)
    left = size
    while left:
        chunk = stream.read(min(left, _CHUNK))
        if not chunk:
            raise ExportError("canonical tar is truncated")
        out.write(chunk)
        left -= len(chunk)
    stream.seek(here)


def _entries(stream: BinaryIO) -> Iterator[tuple[bytes, TarEntry, int]]:
    """(path, entry, offset of its data in *stream*), reading *stream* itself."""
    for entry in TarReader(stream):
        rel = entry.name.removeprefix(b"./").strip(b"/")
        yield rel, entry, stream.tell()


def write_newc(canonical_tar: Path, out: BinaryIO, *, epoch: int) -> int:
    """Write the newc archive of *canonical_tar* to *out*; return the member count."""
    if epoch < 0:
        raise ExportError(f"epoch must not be negative (got {epoch})")
    plan = _plan(canonical_tar)
    inodes: dict[bytes, int] = {}
    pending: dict[bytes, tuple[TarEntry, int]] = {}  # canonical path -> (entry, data offset)
    written = 0
    members = 0

    def emit(data: bytes) -> None:
        nonlocal written
        out.write(data)
        written += len(data)

    with open(canonical_tar, "rb") as stream:
        for rel, entry, offset in _entries(stream):
            members += 1
            name = rel or b"."
            mtime = max(0, min(entry.mtime, epoch))
            if entry.type == b"1":
                canonical = entry.linkname.removeprefix(b"./").strip(b"/")
                source, data_offset = pending[canonical]
                last = plan.last_name[canonical] == rel
                size = source.size if last else 0
                emit(
                    _header(
                        name,
                        ino=inodes[canonical],
                        mode=stat.S_IFREG | source.mode,
                        uid=source.uid,
                        gid=source.gid,
                        nlink=plan.nlink[canonical],
                        mtime=max(0, min(source.mtime, epoch)),
                        size=size,
                    )
                )
                if last:
                    _copy(stream, data_offset, size, out)
                    written += size
                    emit(_pad4(size))
                continue
            kind = _TYPES.get(entry.type)
            if kind is None:
                raise ExportError(f"cpio cannot hold tar member {rel!r} of type {entry.type!r}")
            ino = inodes[rel] = len(inodes) + 1
            data = b""
            size = 0
            rdev = (0, 0)
            if kind == stat.S_IFDIR:
                nlink = 2 + plan.subdirs.get(rel, 0)
            elif kind == stat.S_IFLNK:
                data, nlink = entry.linkname, 1
                size = len(data)
            else:
                nlink = plan.nlink[rel]
                if kind in (stat.S_IFCHR, stat.S_IFBLK):
                    rdev = (entry.devmajor, entry.devminor)
                if kind == stat.S_IFREG:
                    size = entry.size
            mode = kind | (0o777 if kind == stat.S_IFLNK else entry.mode)
            deferred = kind == stat.S_IFREG and nlink > 1
            emit(
                _header(
                    name,
                    ino=ino,
                    mode=mode,
                    uid=entry.uid,
                    gid=entry.gid,
                    nlink=nlink,
                    mtime=mtime,
                    size=0 if deferred else size,
                    rdev=rdev,
                )
            )
            if deferred:
                pending[rel] = (entry, offset)
            elif kind == stat.S_IFREG:
                left = size
                while left:
                    chunk = entry.read(min(left, _CHUNK))
                    emit(chunk)
                    left -= len(chunk)
                emit(_pad4(size))
            elif data:
                emit(data + _pad4(size))
        emit(_header(b"TRAILER!!!", ino=0, mode=0, uid=0, gid=0, nlink=1, mtime=0, size=0))
        emit(b"\0" * (-written % 512))
    return members


def export_cpio(
    canonical_tar: Path,
    dest: Path,
    *,
    epoch: int,
    compression: Compression = "none",
) -> CpioArchive:
    """Write *canonical_tar* as a (compressed) newc cpio archive at *dest*, atomically."""
    if compression not in ("none", "gzip", "zstd", "xz"):
        raise ExportError(f"unknown compression {compression!r} (none, gzip, zstd or xz)")
    with staged_output(dest) as (work, out):
        plain = work / "archive.cpio"
        with open(plain, "wb") as handle:
            members = write_newc(canonical_tar, handle, epoch=epoch)
        uncompressed = plain.stat().st_size
        digest = export_tarball(plain, out, compression)
    return CpioArchive(
        path=dest,
        sha256=digest,
        size=os.stat(dest).st_size,
        uncompressed_size=uncompressed,
        members=members,
        compression=compression,
    )
