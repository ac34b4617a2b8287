"""GNU tar's own format, byte for byte, for ``tarball { format = "gnu"; }``.

Other tools publish root file systems as GNU tar archives; reproducing one
means writing the bytes GNU tar 1.34 writes for::

    tar --create --format=gnu --numeric-owner --sort=name \\
        --transform 's,^./,,' --exclude PATTERN... --directory ROOT .

(what ``debuerreotype-tar`` runs). That is, from tar's ``create.c``:

* 512-byte headers with the old GNU magic ``"ustar  \\0"``; mode (permission
  bits only), uid, gid as 7 octal digits and a NUL, size and mtime as 11
  octal digits and a NUL (base-256 when a value does not fit), the checksum
  as 6 octal digits, a NUL and a space; ``uname``/``gname`` empty
  (``--numeric-owner``); device numbers only for devices; no atime/ctime.
* Names over 100 bytes: a ``././@LongLink`` header of type ``L`` (mode 0644,
  ids 0, mtime 0) holding the name and a NUL, then the header with the first
  100 bytes; link targets over 100 bytes likewise with type ``K``, written
  before the ``L`` record.
* Order: depth first, each directory's entries sorted by their bytes
  (``--sort=name``), the same order as reprobuild's canonical tar, which is
  why this writer works from it and never needs the tree.
* ``--transform 's,^./,,'`` is a sed expression applied to member names
  (before the ``/`` of a directory is appended) *and* to symlink and hard
  link targets; its ``.`` matches any byte, so it drops the first two bytes
  of any name or target whose second byte is ``/`` (the root ``.`` stays
  ``./``; a symlink to ``a/b`` is stored as pointing to ``b``, exactly as
  GNU tar does it).
* Hard links: the first path archived is stored as the file, later ones as
  type ``1``; when the first path of a file is excluded, the next one
  archived carries the data.
* ``--exclude``: see :func:`excluded`.
* The archive ends with two zero blocks, padded to a 10240-byte record.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from reprobuild.globs import fnmatch_regex
from reprobuild.tree import TarEntry, TarReader, _pax_record, tar_header

__all__ = [
    "excluded",
    "export_canonical_excluding",
    "export_gnu_tar",
    "export_posix_tar",
    "gnu_transform",
    "write_canonical_excluding",
    "write_gnu_tar",
    "write_posix_tar",
]

_BLOCK: Final = 512
_RECORD: Final = 20 * _BLOCK
_NAME: Final = 100
_CHUNK: Final = 1 << 20
_MAGIC: Final = b"ustar  \0"


def excluded(name: bytes, patterns: Sequence[str]) -> bool:
    """GNU tar's ``--exclude`` test for a member found as *name* (``./a/b``).

    Unanchored: a pattern may match the whole name or the part after any
    ``/``; wildcards match ``/``; and matching a leading part of the name up
    to a ``/`` is enough (so a directory's pattern also covers its contents,
    which tar never visits).
    """
    for pattern in patterns:
        rx = fnmatch_regex(pattern, leading_dir=True)
        if rx.match(name):
            return True
        for i, c in enumerate(name):
            if c == 0x2F and name[i + 1 : i + 2] != b"/" and rx.match(name, i + 1):
                return True
    return False


def gnu_transform(name: bytes) -> bytes:
    """``sed 's,^./,,'`` in the C locale: drop two bytes when the second is ``/``."""
    return name[2:] if len(name) >= 2 and name[1:2] == b"/" else name


def _number(value: int, width: int) -> bytes:
    """tar's ``to_chars`` for the GNU format: octal, or base-256 when too big."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    if value < 0:
        raise ValueError(f"negative value {value} in a tar header")
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def _header(
    name: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    devmajor: int | None = None,
    devminor: int | None = None,
) -> bytes:
    header = bytearray(_BLOCK)
    header[0:_NAME] = name[:_NAME].ljust(_NAME, b"\0")
    header[100:108] = _number(mode & 0o7777, 8)
    header[108:116] = _number(uid, 8)
    header[116:124] = _number(gid, 8)
    header[124:136] = _number(size, 12)
    header[136:148] = _number(max(0, mtime), 12)
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[157:257] = linkname[:_NAME].ljust(_NAME, b"\0")
    header[257:265] = _MAGIC
    if devmajor is not None and devminor is not None:
        header[329:337] = _number(devmajor, 8)
        header[337:345] = _number(devminor, 8)
    header[148:155] = b"%06o\0" % sum(header)
    return bytes(header)


def _long(data: bytes, typeflag: bytes) -> bytes:
    payload = data + b"\0"
    head = _header(
        b"././@LongLink", mode=0o644, uid=0, gid=0, size=len(payload), mtime=0, typeflag=typeflag
    )
    return head + payload + b"\0" * (-len(payload) % _BLOCK)


@dataclass(frozen=True)
class _Meta:
    mode: int
    uid: int
    gid: int
    mtime: int


def _member(
    name: bytes,
    linkname: bytes = b"",
    *,
    meta: _Meta,
    size: int,
    typeflag: bytes,
    devmajor: int | None = None,
    devminor: int | None = None,
) -> bytes:
    out = b""
    if len(linkname) > _NAME:
        out += _long(linkname, b"K")
    if len(name) > _NAME:
        out += _long(name, b"L")
    return out + _header(
        name,
        linkname=linkname,
        mode=meta.mode,
        uid=meta.uid,
        gid=meta.gid,
        size=size,
        mtime=meta.mtime,
        typeflag=typeflag,
        devmajor=devmajor,
        devminor=devminor,
    )


@dataclass
class _Spilled:
    """An excluded file that later links need: its data kept aside."""

    meta: _Meta
    xattrs: list[tuple[str, bytes]]
    size: int
    offset: int


class _Style(Protocol):
    def name(self, path: bytes, is_dir: bool) -> bytes: ...

    def symlink(self, target: bytes) -> bytes: ...

    def header(
        self,
        arcname: bytes,
        linkname: bytes,
        *,
        meta: _Meta,
        size: int,
        typeflag: bytes,
        devmajor: int | None,
        devminor: int | None,
        xattrs: Sequence[tuple[str, bytes]],
    ) -> bytes: ...


class _Gnu:
    """GNU tar's headers and its ``s,^./,,`` names (extended attributes are
    not archived by GNU tar without ``--xattrs``)."""

    def name(self, path: bytes, is_dir: bool) -> bytes:
        return b"./" if path == b"." else gnu_transform(path) + (b"/" if is_dir else b"")

    def symlink(self, target: bytes) -> bytes:
        return gnu_transform(target)

    def header(
        self,
        arcname: bytes,
        linkname: bytes,
        *,
        meta: _Meta,
        size: int,
        typeflag: bytes,
        devmajor: int | None,
        devminor: int | None,
        xattrs: Sequence[tuple[str, bytes]],
    ) -> bytes:
        return _member(
            arcname,
            linkname,
            meta=meta,
            size=size,
            typeflag=typeflag,
            devmajor=devmajor,
            devminor=devminor,
        )


class _Canonical:
    """reprobuild's canonical tar, names and headers as :mod:`reprobuild.tree` writes them."""

    def name(self, path: bytes, is_dir: bool) -> bytes:
        return b"./" if path == b"." else path + (b"/" if is_dir else b"")

    def symlink(self, target: bytes) -> bytes:
        return target

    def header(
        self,
        arcname: bytes,
        linkname: bytes,
        *,
        meta: _Meta,
        size: int,
        typeflag: bytes,
        devmajor: int | None,
        devminor: int | None,
        xattrs: Sequence[tuple[str, bytes]],
    ) -> bytes:
        return tar_header(
            arcname,
            mode=meta.mode,
            uid=meta.uid,
            gid=meta.gid,
            size=size,
            mtime=meta.mtime,
            typeflag=typeflag,
            linkname=linkname,
            devmajor=devmajor or 0,
            devminor=devminor or 0,
            xattrs=xattrs,
        )


class _Posix(_Canonical):
    """GNU tar 1.34's ``--format=posix --numeric-owner --mtime=@EPOCH --clamp-mtime
    --pax-option=delete=atime,delete=ctime`` (archlinux-docker's options).

    Its ustar headers are the canonical tar's; an extended header, where one
    is needed, is named ``DIR/PaxHeaders/BASE`` (GNU's ``%d/PaxHeaders/%f``,
    cut to 100 bytes) with mode 0644, ids 0 and the ``--mtime`` epoch, and
    holds its records in the order GNU tar stores them: ``linkpath``,
    ``path``, ``uid``, ``gid``, ``size``, then ``SCHILY.xattr.*``. POSIX ACLs
    (GNU stores them as text) and sub-second mtimes are not written.
    """

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def header(
        self,
        arcname: bytes,
        linkname: bytes,
        *,
        meta: _Meta,
        size: int,
        typeflag: bytes,
        devmajor: int | None,
        devminor: int | None,
        xattrs: Sequence[tuple[str, bytes]],
    ) -> bytes:
        records: list[tuple[bytes, bytes]] = []
        if len(linkname) > _NAME:
            records.append((b"linkpath", linkname))
        if len(arcname) > _NAME:
            records.append((b"path", arcname))
        uid, gid = meta.uid, meta.gid
        if uid > 0o7777777:
            records.append((b"uid", str(uid).encode()))
            uid = 0
        if gid > 0o7777777:
            records.append((b"gid", str(gid).encode()))
            gid = 0
        if size > 0o77777777777:
            records.append((b"size", str(size).encode()))
        for key, value in xattrs:
            if key.startswith("system.posix_acl_"):
                raise ValueError(f"{arcname!r}: POSIX ACLs are not written in the posix format")
            records.append((b"SCHILY.xattr." + key.encode(), value))
        plain = tar_header(
            arcname[:_NAME],
            mode=meta.mode,
            uid=uid,
            gid=gid,
            size=size if size <= 0o77777777777 else 0,
            mtime=meta.mtime,
            typeflag=typeflag,
            linkname=linkname[:_NAME],
            devmajor=devmajor or 0,
            devminor=devminor or 0,
        )
        if not records:
            return plain
        data = b"".join(_pax_record(k, v) for k, v in records)
        path = arcname.rstrip(b"/")
        directory, _, base = path.rpartition(b"/")
        name = (directory or b".") + b"/PaxHeaders/" + base
        head = bytearray(_BLOCK)
        head[0:_NAME] = name[:_NAME].ljust(_NAME, b"\0")
        head[100:108] = b"%07o\0" % 0o644
        head[108:116] = b"%07o\0" % 0
        head[116:124] = b"%07o\0" % 0
        head[124:136] = b"%011o\0" % len(data)
        head[136:148] = b"%011o\0" % self.epoch
        head[148:156] = b" " * 8
        head[156:157] = b"x"
        head[257:265] = b"ustar\x0000"
        head[148:155] = b"%06o\0" % sum(head)
        return bytes(head) + data + b"\0" * (-len(data) % _BLOCK) + plain


def write_posix_tar(
    canonical: BinaryIO, out: BinaryIO, *, epoch: int, exclude: Sequence[str] = ()
) -> int:
    """GNU tar's posix-format archive of the tree (see :class:`_Posix`)."""
    return _filtered(canonical, out, exclude, _Posix(epoch))


def write_gnu_tar(canonical: BinaryIO, out: BinaryIO, *, exclude: Sequence[str] = ()) -> int:
    """Write the GNU tar of the tree whose canonical tar is *canonical*; return its size.

    *canonical* must be seekable (it is read twice: first for the hard link
    targets, whose data an exclusion may force to be kept).
    """
    return _filtered(canonical, out, exclude, _Gnu())


def write_canonical_excluding(canonical: BinaryIO, out: BinaryIO, *, exclude: Sequence[str]) -> int:
    """The canonical tar without the members *exclude* matches (as GNU tar would exclude them)."""
    return _filtered(canonical, out, exclude, _Canonical())


def _filtered(canonical: BinaryIO, out: BinaryIO, exclude: Sequence[str], style: _Style) -> int:
    targets: set[bytes] = set()
    for entry in TarReader(canonical):
        if entry.type == b"1":
            targets.add(entry.linkname)
    canonical.seek(0)
    written = 0

    def emit(data: bytes) -> None:
        nonlocal written
        out.write(data)
        written += len(data)

    def member(
        arcname: bytes,
        linkname: bytes = b"",
        *,
        meta: _Meta,
        size: int = 0,
        typeflag: bytes,
        devices: tuple[int, int] | None = None,
        xattrs: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        emit(
            style.header(
                arcname,
                linkname,
                meta=meta,
                size=size,
                typeflag=typeflag,
                devmajor=devices[0] if devices else None,
                devminor=devices[1] if devices else None,
                xattrs=xattrs,
            )
        )

    emitted: dict[bytes, bytes] = {}  # first path of a link group -> its archived name
    spilled: dict[bytes, _Spilled] = {}
    skip: bytes | None = None
    with tempfile.TemporaryFile() as spill:
        for entry in TarReader(canonical):
            name = entry.name
            if skip is not None and name.startswith(skip):
                if entry.type == b"0" and name in targets:
                    spilled[name] = _keep(entry, spill)
                continue
            skip = None
            is_dir = entry.type == b"5"
            path = name.rstrip(b"/") if name != b"./" else b"."
            if path != b"." and excluded(path, exclude):
                if is_dir:
                    skip = path + b"/"
                elif entry.type == b"0" and name in targets:
                    spilled[name] = _keep(entry, spill)
                continue
            arcname = style.name(path, is_dir)
            meta = _Meta(entry.mode, entry.uid, entry.gid, entry.mtime)
            if entry.type == b"1":
                first = entry.linkname
                if first in emitted:
                    member(arcname, emitted[first], meta=meta, typeflag=b"1")
                    continue
                kept = spilled.pop(first, None)
                if kept is None:
                    raise ValueError(f"hard link {name!r} to {first!r}, which is not archived")
                emitted[first] = arcname
                member(arcname, meta=kept.meta, size=kept.size, typeflag=b"0", xattrs=kept.xattrs)
                spill.seek(kept.offset)
                _copy(spill, emit, kept.size)
            elif entry.type == b"0":
                if name in targets:
                    emitted[name] = arcname
                member(arcname, meta=meta, size=entry.size, typeflag=b"0", xattrs=entry.xattrs)
                _copy(entry, emit, entry.size)
            elif entry.type == b"2":
                member(arcname, style.symlink(entry.linkname), meta=meta, typeflag=b"2")
            elif entry.type in (b"3", b"4"):
                member(
                    arcname,
                    meta=meta,
                    typeflag=entry.type,
                    devices=(entry.devmajor, entry.devminor),
                    xattrs=entry.xattrs,
                )
            else:  # directories and FIFOs
                member(arcname, meta=meta, typeflag=entry.type, xattrs=entry.xattrs)
    emit(b"\0" * (2 * _BLOCK))
    emit(b"\0" * (-written % _RECORD))
    return written


def _keep(entry: TarEntry, spill: BinaryIO) -> _Spilled:
    spill.seek(0, 2)
    meta = _Meta(entry.mode, entry.uid, entry.gid, entry.mtime)
    kept = _Spilled(meta, list(entry.xattrs), entry.size, spill.tell())
    while chunk := entry.read(_CHUNK):
        spill.write(chunk)
    return kept


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def _copy(source: _Readable, emit: Callable[[bytes], None], size: int) -> None:
    left = size
    while left:
        chunk = source.read(min(left, _CHUNK))
        if not chunk:
            raise ValueError("tar member data is truncated")
        emit(chunk)
        left -= len(chunk)
    emit(b"\0" * (-size % _BLOCK))


def export_gnu_tar(canonical_tar: Path, dest: Path, *, exclude: Sequence[str]) -> None:
    """Write *dest* (under a temporary name, renamed when complete)."""
    _export(canonical_tar, dest, exclude, _Gnu())


def export_posix_tar(
    canonical_tar: Path, dest: Path, *, epoch: int, exclude: Sequence[str]
) -> None:
    """Write *dest*: GNU tar's posix format, as archlinux-docker's build writes it."""
    _export(canonical_tar, dest, exclude, _Posix(epoch))


def export_canonical_excluding(canonical_tar: Path, dest: Path, *, exclude: Sequence[str]) -> None:
    """Write *dest*: the canonical tar without what *exclude* matches."""
    _export(canonical_tar, dest, exclude, _Canonical())


def _export(canonical_tar: Path, dest: Path, exclude: Sequence[str], style: _Style) -> None:
    tmp = dest.with_name(dest.name + ".partial")
    try:
        with canonical_tar.open("rb") as src, tmp.open("wb") as out:
            _filtered(src, out, exclude, style)
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
