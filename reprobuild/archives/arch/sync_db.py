"""Arch Linux sync databases, read the way libalpm's ``be_sync.c`` reads them.

A sync database (``core.db``) is a compressed tar holding one directory per
package, ``NAME-VERSION/``, with its metadata in ``%FIELD%`` sections. Since
pacman 4.2 (2014) a package's fields sit in one ``desc`` file; older
databases split the dependency fields into a ``depends`` file beside it, and
``.files`` databases add a ``files`` file. libalpm reads all three with the
same loop, and so does this module:

* the package's name and version come from the directory name (the last two
  ``-`` separate them), not from ``%NAME%``/``%VERSION%``;
* a line that is not a known ``%FIELD%`` header is skipped, so unknown
  sections and unknown files (``mtree``, a README at the top) are ignored;
* a single-valued field takes the next line (the last occurrence wins); a
  list field takes lines up to the next empty one (occurrences add up), so
  ``desc`` and ``depends`` of one package simply merge;
* dependency strings are split as ``alpm_dep_from_string`` splits them, which
  never fails: ``gconf>`` is ``gconf`` newer than the empty version, and
  ``kdelibs cmake`` is one (odd) name. Numbers that do not parse are unknown
  (``_alpm_strtoofft`` gives -1), not errors.

Only a file name that would leave the package directory (``%FILENAME%`` with
a ``/`` or starting with ``.``) or a directory name without a version is
refused, as libalpm refuses the whole database for them.

:class:`SyncDb` is the parsed form: plain tuples and dicts (so a parse can
be cached with :mod:`marshal` by the database's sha256), with a provider and
a group index in pacman's search order. :class:`SyncPackage` objects are
made from it on demand.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import marshal
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import zstandard

from reprobuild.archives.arch.versions import vercmp
from reprobuild.errors import ArchiveError

__all__ = [
    "Depend",
    "SyncDb",
    "SyncPackage",
    "parse_depend",
    "read_sync_db",
    "read_sync_db_index",
]


# --------------------------------------------------------------------------
# Dependencies
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Depend:
    """One entry of depends/provides/conflicts: ``name[op version][: description]``."""

    name: str
    op: str | None = None
    version: str | None = None
    description: str | None = None

    def satisfied_by(self, version: str) -> bool:
        """Whether ``version`` meets the constraint, compared with pacman's vercmp."""
        if self.op is None or self.version is None:
            return True
        c = vercmp(version, self.version)
        if self.op == "=":
            return c == 0
        if self.op == ">=":
            return c >= 0
        if self.op == "<=":
            return c <= 0
        if self.op == ">":
            return c > 0
        return c < 0

    def __str__(self) -> str:
        text = self.name
        if self.op is not None:
            text += f"{self.op}{self.version}"
        if self.description is not None:
            text += f": {self.description}"
        return text


@functools.lru_cache(maxsize=1 << 16)
def parse_depend(text: str) -> Depend:
    """Split a dependency string exactly as libalpm's ``alpm_dep_from_string``.

    The description starts at the first ``": "`` (so an epoch's ``:`` stays in
    the version); the operator is the first ``<`` (or ``<=``), else the first
    ``>`` (or ``>=``), else the first ``=``; nothing is stripped or refused.
    """
    spec, sep, desc = text.partition(": ")
    description = desc if sep else None
    i = spec.find("<")
    if i >= 0:
        op = "<=" if spec[i + 1 : i + 2] == "=" else "<"
    else:
        i = spec.find(">")
        if i >= 0:
            op = ">=" if spec[i + 1 : i + 2] == "=" else ">"
        else:
            i = spec.find("=")
            if i < 0:
                return Depend(spec, None, None, description)
            op = "="
    return Depend(spec[:i], op, spec[i + len(op) :], description)


def _depends(values: Iterable[str]) -> tuple[Depend, ...]:
    return tuple(parse_depend(v) for v in values)


def dep_name(text: str) -> str:
    """The name part of a dependency string (what provider indexes are keyed by)."""
    return parse_depend(text).name


# --------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncPackage:
    """A package entry of a sync database (its ``desc``/``depends``, plus ``files``)."""

    name: str
    version: str
    filename: str
    arch: str
    base: str
    description: str = ""
    csize: int | None = None
    isize: int | None = None
    sha256: str | None = None
    md5: str | None = None
    pgpsig: str | None = None
    url: str | None = None
    licenses: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    builddate: int | None = None
    packager: str | None = None
    depends: tuple[Depend, ...] = ()
    optdepends: tuple[Depend, ...] = ()
    makedepends: tuple[Depend, ...] = ()
    checkdepends: tuple[Depend, ...] = ()
    provides: tuple[Depend, ...] = ()
    conflicts: tuple[Depend, ...] = ()
    replaces: tuple[Depend, ...] = ()
    files: tuple[str, ...] | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...], files: tuple[str, ...] | None = None) -> SyncPackage:
        """Build one from a :class:`SyncDb` row (see ``_ROW``)."""
        f = dict(zip(_ROW, row, strict=True))
        return cls(
            name=f["name"],
            version=f["version"],
            filename=f["FILENAME"] or "",
            arch=f["ARCH"] or "",
            base=f["BASE"] or f["name"],
            description=f["DESC"] or "",
            csize=_number(f["CSIZE"]),
            isize=_number(f["ISIZE"]),
            sha256=f["SHA256SUM"],
            md5=f["MD5SUM"],
            pgpsig=f["PGPSIG"],
            url=f["URL"],
            licenses=f["LICENSE"],
            groups=f["GROUPS"],
            builddate=_number(f["BUILDDATE"]),
            packager=f["PACKAGER"],
            depends=_depends(f["DEPENDS"]),
            optdepends=_depends(f["OPTDEPENDS"]),
            makedepends=_depends(f["MAKEDEPENDS"]),
            checkdepends=_depends(f["CHECKDEPENDS"]),
            provides=_depends(f["PROVIDES"]),
            conflicts=_depends(f["CONFLICTS"]),
            replaces=_depends(f["REPLACES"]),
            files=files,
        )


def _number(text: str | None) -> int | None:
    """``_alpm_strtoofft``: a base-10 integer, anything else is unknown."""
    if text is None:
        return None
    try:
        value = int(text, 10)
    except ValueError:
        return None
    return value if value >= 0 else None


_SINGLE = (
    "FILENAME",
    "BASE",
    "DESC",
    "URL",
    "ARCH",
    "BUILDDATE",
    "PACKAGER",
    "CSIZE",
    "ISIZE",
    "MD5SUM",
    "SHA256SUM",
    "PGPSIG",
)
_LISTS = (
    "GROUPS",
    "LICENSE",
    "REPLACES",
    "DEPENDS",
    "OPTDEPENDS",
    "MAKEDEPENDS",
    "CHECKDEPENDS",
    "CONFLICTS",
    "PROVIDES",
)
_ROW = ("name", "version", *_SINGLE, *_LISTS)
"""The fields of a row, in order (plain strings and tuples of strings)."""
_HEADERS = {f"%{k}%": k for k in (*_SINGLE, *_LISTS, "FILES", "NAME", "VERSION")}
_KINDS = frozenset({"desc", "depends", "files"})


@dataclass(frozen=True)
class SyncDb:
    """One parsed repository, in the shape pacman searches it.

    ``packed`` maps a package name to its row (``_ROW`` order), marshalled:
    a lock touches a few dozen of thousands of packages, so rows are decoded
    on use and a cached parse loads in a millisecond. ``providers`` maps a
    provided name to the packages providing it, and ``groups`` a group to its
    members, both in name order (libalpm's sorted package cache). ``files``
    holds ``%FILES%`` when the database had them.
    """

    packed: Mapping[str, bytes]
    providers: Mapping[str, tuple[str, ...]]
    groups: Mapping[str, tuple[str, ...]]
    files: Mapping[str, tuple[str, ...]]

    def names(self) -> list[str]:
        return sorted(self.packed)

    def __contains__(self, name: str) -> bool:
        return name in self.packed

    def package(self, name: str) -> SyncPackage | None:
        row = self.packed.get(name)
        if row is None:
            return None
        return SyncPackage.from_row(marshal.loads(row), self.files.get(name))

    def to_plain(self) -> tuple[Any, ...]:
        """Builtins only, for :mod:`marshal`."""
        return (dict(self.packed), dict(self.providers), dict(self.groups), dict(self.files))

    @classmethod
    def from_plain(cls, plain: Any) -> SyncDb:
        packed, providers, groups, files = plain
        return cls(packed, providers, groups, files)


# --------------------------------------------------------------------------
# The tar container
# --------------------------------------------------------------------------


def _decompress(data: bytes, what: str) -> bytes:
    """Decompress by magic number: repo-add writes gzip, zstd, xz, bzip2 or plain tar."""
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:4] == b"\x28\xb5\x2f\xfd":
            out: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            return out
        if data[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(data)
        if data[:3] == b"BZh":
            return bz2.decompress(data)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as exc:
        raise ArchiveError(f"{what}: corrupt compressed data: {exc}") from exc
    return data


def _octal(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        return -value if field[:1] == b"\xff" else value
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _pax_path(data: bytes) -> str | None:
    path = None
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        if key == b"path":
            path = value.decode("utf-8", "surrogateescape")
        pos += length
    return path


def _tar_files(raw: bytes, what: str) -> Iterator[tuple[str, bytes]]:
    """Every non-directory member of a tar, as libarchive hands them to libalpm.

    ustar, pax (``path``) and GNU long names are understood; a header whose
    checksum is wrong ends the archive with an error (the file is not a tar).
    """
    pos = 0
    end = len(raw)
    long_name: str | None = None
    while pos + 512 <= end:
        header = raw[pos : pos + 512]
        if header == bytes(512):
            return
        try:
            stored = _octal(header[148:156])
            size = _octal(header[124:136])
        except ValueError:
            stored = size = -1
        unsigned = sum(header) - sum(header[148:156]) + 256  # the field counts as spaces
        if stored != unsigned or size < 0:
            raise ArchiveError(f"{what}: not a valid database tar (bad header at byte {pos})")
        kind = header[156:157]
        name = header[:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        pos += 512
        body = raw[pos : pos + size]
        if len(body) < size:
            raise ArchiveError(f"{what}: not a valid database tar (truncated member)")
        pos += (size + 511) & ~511
        if kind == b"L":
            long_name = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        if kind == b"x":
            long_name = _pax_path(body) or long_name
            continue
        if kind in (b"g", b"K"):
            continue
        path = long_name if long_name is not None else name.decode("utf-8", "surrogateescape")
        long_name = None
        if kind == b"5" or path.endswith("/"):
            continue
        yield path, body if kind in (b"0", b"\0", b"7") else b""
    if pos < end and raw[pos:].strip(b"\0"):
        raise ArchiveError(f"{what}: not a valid database tar (truncated header)")


# --------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------


def split_entry(entry: str) -> tuple[str, str] | None:
    """``_alpm_splitname``: ``NAME-VER-REL`` (up to the first ``/``) -> name, version."""
    head = entry.split("/", 1)[0]
    dash = head.rfind("-")
    if dash <= 0:
        return None
    dash = head.rfind("-", 0, dash)
    if dash <= 0:
        return None
    return head[:dash], head[dash + 1 :]


def _read_fields(text: str, fields: dict[str, Any]) -> None:
    """Merge one desc/depends/files text into ``fields``, as ``sync_db_read``."""
    lines = text.split("\n")
    count = len(lines)
    i = 0
    while i < count:
        key = _HEADERS.get(lines[i])
        i += 1
        if key is None:
            continue
        if key in ("NAME", "VERSION"):  # checked against the entry name, never used
            i += 1
        elif key in _LISTS or key == "FILES":
            values = fields.setdefault(key, [])
            while i < count and lines[i]:
                values.append(lines[i])
                i += 1
        else:
            fields[key] = lines[i] if i < count else ""
            i += 1


def _check_filename(name: str, filename: str, what: str) -> None:
    if filename.startswith(".") or "/" in filename or len(filename) > 4096:
        raise ArchiveError(
            f"{what}: the file name of package {name} is illegal: {filename!r}",
            hint="pacman refuses this database too (a file name may not be a path)",
        )


def read_sync_db_index(data: bytes, *, what: str = "sync database") -> SyncDb:
    """Parse a sync database (``core.db`` or ``core.files``) into a :class:`SyncDb`."""
    raw = _decompress(data, what)
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for path, body in _tar_files(raw, what):
        split = split_entry(path)
        if split is None:  # libalpm splits the name first, even of a file at the top
            raise ArchiveError(
                f"{what}: invalid name for database entry '{path}' (expected NAME-VERSION-REL/)",
                hint="pacman refuses this database too",
            )
        slash = path.rfind("/")
        if slash < 0:
            continue  # "unknown database file" at the top: libalpm warns and goes on
        if path[slash + 1 :] not in _KINDS:
            continue
        name, version = split
        entry = found.get(name)
        if entry is None:
            entry = found[name] = (name, version, {})
        _read_fields(body.decode("utf-8", "surrogateescape"), entry[2])
    packed: dict[str, bytes] = {}
    files: dict[str, tuple[str, ...]] = {}
    providers: dict[str, list[str]] = {}
    groups: dict[str, list[str]] = {}
    for name in sorted(found):
        _, version, fields = found[name]
        filename = fields.get("FILENAME")
        if filename is not None:
            _check_filename(name, filename, what)
        packed[name] = marshal.dumps(
            (
                name,
                version,
                *(fields.get(k) for k in _SINGLE),
                *(tuple(fields.get(k, ())) for k in _LISTS),
            )
        )
        if "FILES" in fields:
            files[name] = tuple(fields["FILES"])
        for prov in fields.get("PROVIDES", ()):
            names = providers.setdefault(dep_name(prov), [])
            if not names or names[-1] != name:
                names.append(name)
        for group in fields.get("GROUPS", ()):
            members = groups.setdefault(group, [])
            if not members or members[-1] != name:
                members.append(name)
    return SyncDb(
        packed,
        {k: tuple(v) for k, v in providers.items()},
        {k: tuple(v) for k, v in groups.items()},
        files,
    )


def read_sync_db(data: bytes, *, what: str = "sync database") -> tuple[SyncPackage, ...]:
    """Every package of a sync database, sorted by name."""
    db = read_sync_db_index(data, what=what)
    return tuple(p for n in db.names() if (p := db.package(n)) is not None)
