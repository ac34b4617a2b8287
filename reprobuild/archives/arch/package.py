"""Arch Linux archives: package metadata, pacman's version order, signatures.

An Arch snapshot is a ``<repo>.db`` per repository (read by
:mod:`reprobuild.archives.arch.sync_db`, re-exported here); each package is a
``.pkg.tar.zst`` whose ``.PKGINFO``, ``.BUILDINFO`` and ``.MTREE`` describe
it. Everything here turns those into frozen dataclasses; detached signatures
go through ``sqv`` or ``gpgv``.
"""

from __future__ import annotations

import gzip
import lzma
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import zstandard

from reprobuild.archives.arch.sync_db import (
    Depend,
    SyncDb,
    SyncPackage,
    parse_depend,
    read_sync_db,
    read_sync_db_index,
)
from reprobuild.archives.arch.versions import vercmp
from reprobuild.archives.signature import Signer, verify_detached
from reprobuild.errors import ArchiveError

__all__ = [
    "BuildInfo",
    "Depend",
    "MtreeEntry",
    "PackageMeta",
    "PkgInfo",
    "SyncDb",
    "SyncPackage",
    "parse_buildinfo",
    "parse_depend",
    "parse_mtree",
    "parse_pkginfo",
    "read_package",
    "read_sync_db",
    "read_sync_db_index",
    "vercmp",
    "verify_signature",
]


def _depends(values: Iterable[str]) -> tuple[Depend, ...]:
    return tuple(parse_depend(v) for v in values)


# --------------------------------------------------------------------------
# Package metadata (.PKGINFO, .BUILDINFO, .MTREE)
# --------------------------------------------------------------------------


def _key_values(text: str, what: str) -> list[tuple[str, str]]:
    """``key = value`` lines as makepkg writes them; ``#`` starts a comment line."""
    out: list[tuple[str, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(" = ")
        if not sep:
            raise ArchiveError(f"{what}:{lineno}: expected 'key = value', got {line[:60]!r}")
        out.append((key.strip(), value))
    return out


def _multi(pairs: list[tuple[str, str]], key: str) -> tuple[str, ...]:
    return tuple(v for k, v in pairs if k == key)


def _single(pairs: list[tuple[str, str]], key: str, what: str, required: bool = True) -> str:
    for k, v in pairs:
        if k == key:
            return v
    if required:
        raise ArchiveError(f"{what}: no {key} entry")
    return ""


@dataclass(frozen=True)
class PkgInfo:
    """The ``.PKGINFO`` of a built package (pacman's own view of it)."""

    name: str
    base: str
    version: str
    arch: str
    description: str = ""
    url: str = ""
    builddate: int = 0
    packager: str = ""
    size: int = 0
    licenses: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    xdata: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    depends: tuple[Depend, ...] = ()
    optdepends: tuple[Depend, ...] = ()
    makedepends: tuple[Depend, ...] = ()
    checkdepends: tuple[Depend, ...] = ()
    provides: tuple[Depend, ...] = ()
    conflicts: tuple[Depend, ...] = ()
    replaces: tuple[Depend, ...] = ()


def _int(value: str, key: str, what: str) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        raise ArchiveError(f"{what}: {key} is not a number: {value!r}") from None


def parse_pkginfo(text: str, *, what: str = ".PKGINFO") -> PkgInfo:
    """Parse a ``.PKGINFO`` file."""
    kv = _key_values(text, what)
    name = _single(kv, "pkgname", what)
    return PkgInfo(
        name=name,
        base=_single(kv, "pkgbase", what, required=False) or name,
        version=_single(kv, "pkgver", what),
        arch=_single(kv, "arch", what),
        description=_single(kv, "pkgdesc", what, required=False),
        url=_single(kv, "url", what, required=False),
        builddate=_int(_single(kv, "builddate", what, required=False), "builddate", what),
        packager=_single(kv, "packager", what, required=False),
        size=_int(_single(kv, "size", what, required=False), "size", what),
        licenses=_multi(kv, "license"),
        groups=_multi(kv, "group"),
        xdata=_multi(kv, "xdata"),
        backup=_multi(kv, "backup"),
        depends=_depends(_multi(kv, "depend")),
        optdepends=_depends(_multi(kv, "optdepend")),
        makedepends=_depends(_multi(kv, "makedepend")),
        checkdepends=_depends(_multi(kv, "checkdepend")),
        provides=_depends(_multi(kv, "provides")),
        conflicts=_depends(_multi(kv, "conflict")),
        replaces=_depends(_multi(kv, "replaces")),
    )


@dataclass(frozen=True)
class BuildInfo:
    """A ``.BUILDINFO`` (format 1 or 2): what a package was built with.

    ``installed`` lists ``name-pkgver-pkgrel-arch`` of every package in the
    build root, which is what rebuilding it reproducibly needs. Format 2 adds
    ``startdir``, ``buildtool`` and ``buildtoolver``; for format 1 they are empty.
    """

    format: int
    pkgname: str
    pkgbase: str
    pkgver: str
    pkgarch: str
    pkgbuild_sha256sum: str
    packager: str
    builddate: int
    builddir: str
    startdir: str = ""
    buildtool: str = ""
    buildtoolver: str = ""
    buildenv: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    installed: tuple[str, ...] = ()


def parse_buildinfo(text: str, *, what: str = ".BUILDINFO") -> BuildInfo:
    """Parse a ``.BUILDINFO`` file; formats other than 1 and 2 are refused."""
    kv = _key_values(text, what)
    fmt_text = _single(kv, "format", what, required=False) or "1"
    if fmt_text not in ("1", "2"):
        raise ArchiveError(
            f"{what}: unsupported BUILDINFO format {fmt_text}",
            hint="reprobuild understands formats 1 and 2",
        )
    fmt = int(fmt_text)
    required_v2 = fmt == 2
    return BuildInfo(
        format=fmt,
        pkgname=_single(kv, "pkgname", what),
        pkgbase=_single(kv, "pkgbase", what),
        pkgver=_single(kv, "pkgver", what),
        pkgarch=_single(kv, "pkgarch", what),
        pkgbuild_sha256sum=_single(kv, "pkgbuild_sha256sum", what),
        packager=_single(kv, "packager", what),
        builddate=_int(_single(kv, "builddate", what), "builddate", what),
        builddir=_single(kv, "builddir", what),
        startdir=_single(kv, "startdir", what, required=required_v2),
        buildtool=_single(kv, "buildtool", what, required=required_v2),
        buildtoolver=_single(kv, "buildtoolver", what, required=required_v2),
        buildenv=_multi(kv, "buildenv"),
        options=_multi(kv, "options"),
        installed=_multi(kv, "installed"),
    )


@dataclass(frozen=True)
class MtreeEntry:
    """One file of a package as ``.MTREE`` records it (``/set`` defaults applied)."""

    path: str
    type: str
    mode: str | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    time: str | None = None
    sha256: str | None = None
    link: str | None = None


_MTREE_ESCAPE = re.compile(r"\\([0-7]{3})")


def _mtree_unescape(text: str) -> str:
    """Undo mtree's octal escapes (``\\040`` for a space), byte-wise then UTF-8."""
    if "\\" not in text:
        return text
    raw = _MTREE_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)
    return raw.encode("latin-1", errors="surrogateescape").decode("utf-8", errors="replace")


def parse_mtree(data: bytes, *, what: str = ".MTREE") -> tuple[MtreeEntry, ...]:
    """Parse a (gzip-compressed, as in packages, or plain) mtree file."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"{what}: corrupt gzip data: {exc}") from exc
    defaults: dict[str, str] = {}
    entries: list[MtreeEntry] = []
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "/set":
            defaults.update(w.split("=", 1) for w in words[1:] if "=" in w)  # type: ignore[misc]
            continue
        if words[0] == "/unset":
            for w in words[1:]:
                if w == "all":
                    defaults.clear()
                defaults.pop(w, None)
            continue
        kw = dict(defaults)
        for w in words[1:]:
            key, sep, value = w.partition("=")
            if not sep:
                raise ArchiveError(f"{what}:{lineno}: malformed keyword {w!r}")
            kw[key] = value
        path = _mtree_unescape(words[0])
        path = path[2:] if path.startswith("./") else path

        def num(key: str, kw: dict[str, str] = kw, ln: int = lineno) -> int | None:
            v = kw.get(key)
            if v is None:
                return None
            try:
                return int(v)
            except ValueError:
                raise ArchiveError(f"{what}:{ln}: {key} is not a number: {v!r}") from None

        link = kw.get("link")
        entries.append(
            MtreeEntry(
                path=path,
                type=kw.get("type", "file"),
                mode=kw.get("mode"),
                uid=num("uid"),
                gid=num("gid"),
                size=num("size"),
                time=kw.get("time"),
                sha256=kw.get("sha256digest") or kw.get("sha256"),
                link=_mtree_unescape(link) if link is not None else None,
            )
        )
    return tuple(entries)


@dataclass(frozen=True)
class PackageMeta:
    """The metadata members of a ``.pkg.tar.*``; ``buildinfo``/``mtree`` may be absent."""

    pkginfo: PkgInfo
    buildinfo: BuildInfo | None = None
    mtree: tuple[MtreeEntry, ...] | None = field(default=None, repr=False)


def _package_stream(fileobj: IO[bytes], what: str) -> IO[bytes]:
    magic = fileobj.read(6)
    fileobj.seek(0)
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(fileobj)
        return reader
    if magic[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=fileobj))
    if magic == b"\xfd7zXZ\x00":
        return cast(IO[bytes], lzma.LZMAFile(fileobj))
    if magic[:3] == b"BZh":
        raise ArchiveError(f"{what}: bzip2 packages are not supported")
    return fileobj


def _metadata_members(tar: tarfile.TarFile) -> Iterator[tuple[str, bytes]]:
    """Yield the top-level dotfiles; makepkg stores them first, so stop at the first other."""
    for member in tar:
        name = member.name.removeprefix("./")
        if "/" in name or not name.startswith("."):
            return
        if member.isfile():
            fobj = tar.extractfile(member)
            assert fobj is not None
            yield name, fobj.read()


def read_package(path: Path) -> PackageMeta:
    """Read ``.PKGINFO``, ``.BUILDINFO`` and ``.MTREE`` from a package file.

    Only the start of the archive is decompressed: makepkg puts these members
    before the payload.
    """
    what = str(path)
    found: dict[str, bytes] = {}
    try:
        with (
            path.open("rb") as raw,
            _package_stream(raw, what) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            for name, content in _metadata_members(tar):
                found[name] = content
    except (tarfile.TarError, zstandard.ZstdError, OSError, EOFError, lzma.LZMAError) as exc:
        raise ArchiveError(f"{what}: cannot read package: {exc}") from exc
    if ".PKGINFO" not in found:
        raise ArchiveError(f"{what}: no .PKGINFO (not a pacman package?)")
    text = found[".PKGINFO"].decode("utf-8", errors="replace")
    buildinfo = found.get(".BUILDINFO")
    mtree = found.get(".MTREE")
    return PackageMeta(
        pkginfo=parse_pkginfo(text, what=f"{what}: .PKGINFO"),
        buildinfo=parse_buildinfo(
            buildinfo.decode("utf-8", errors="replace"), what=f"{what}: .BUILDINFO"
        )
        if buildinfo
        else None,
        mtree=parse_mtree(mtree, what=f"{what}: .MTREE") if mtree is not None else None,
    )


def verify_signature(
    path: Path,
    keyring: Path,
    *,
    sig_path: Path | None = None,
    allow_expired_keys: bool = False,
) -> tuple[Signer, ...]:
    """Verify ``path`` against its detached ``path.sig`` (packages and databases)."""
    return verify_detached(
        path,
        sig_path or path.with_name(path.name + ".sig"),
        keyring,
        allow_expired_keys=allow_expired_keys,
    )
