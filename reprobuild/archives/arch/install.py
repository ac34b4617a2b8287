"""Installing pacman packages in-process, as ``pacman -U`` does on a fresh root.

A ``.pkg.tar.{zst,xz,gz,bz2}`` is one tar: makepkg's metadata (``.PKGINFO``,
``.BUILDINFO``, ``.MTREE``, ``.INSTALL``, ``.CHANGELOG``) first, then the
payload. What libalpm 6 (``add.c``, ``be_package.c``, ``be_local.c``) does
with it, and what this module reproduces:

* **File list.** pacman reads the whole package before extracting: the file
  list is the ``.MTREE``'s (``./`` stripped, directories with a trailing
  ``/``), or the archive's members when there is no ``.MTREE``. A member not
  in that list is skipped with a warning; every name that starts with ``.``
  (compared on the raw member name, as pacman does) is metadata, never
  extracted into the tree. ``.INSTALL``, ``.CHANGELOG`` and ``.MTREE`` go to
  the local database as ``install``, ``changelog`` and ``mtree``, mode 0644,
  with the member's owner and mtime.
* **Entries.** Numeric owners, modes (setuid/setgid kept, chmod after chown),
  mtimes, symlinks, hard links, FIFOs and extended attributes
  from the archive. An existing directory is kept as it is, with a warning
  when its permissions differ from the package's (pacman's "directory
  permissions differ"). A non-directory where the package has a directory,
  or the reverse, is refused: pacman refuses both ("exists in filesystem",
  "not overwriting dir with file") unless told ``--overwrite``, and with it
  would replace a symlink to a directory by a directory. A non-directory over
  a non-directory is replaced (as with ``--overwrite '*'``) with a warning.
* **backup** files (``.PKGINFO`` ``backup =``) are installed normally on a
  fresh install; their md5 goes to ``%BACKUP%``.
* **Database.** ``/var/lib/pacman/local/NAME-VERSION/{desc,files,mtree,
  install,changelog}`` and ``ALPM_DB_VERSION`` (``9``), in the byte format of
  ``_alpm_local_db_write``. ``%XDATA%`` (pacman 6.1+) is written when asked,
  which is the default: Arch packages built by makepkg 6.1+ carry it.

Differences from pacman, deliberate and documented:

* ``%INSTALLDATE%`` is the build epoch (``SOURCE_DATE_EPOCH``), not the clock,
  and ``desc``/``files`` and created database directories get the epoch as
  mtime; new payload directories get the archive's mtime (pacman leaves the
  time of the last file created in them). Everything else is pacman's.
* Safety as in :mod:`reprobuild.archives.debian.unpack`: absolute member names, ``..``,
  writes through symlinks that leave the tree (resolved as under a chroot)
  and hard links to anything but an earlier member are refused with an
  error naming the package and the member. A missing parent directory is an
  error (libarchive would create it; makepkg never omits one). So are, unlike
  pacman: character and block devices (no Arch package ships one: ``/dev``
  is devtmpfs), a path that appears twice, metadata members over
  :data:`~reprobuild.archives.debian.unpack.CONTROL_MAX` (read whole into memory), and
  file data beyond twice ``.PKGINFO``'s ``size`` plus a slack or beyond the
  free space (:class:`~reprobuild.archives.debian.unpack.UnpackBudget`): a decompression
  bomb fills no disk. setuid files are installed, as pacman does.
* No upgrade logic (``.pacnew``, NoUpgrade, NoExtract): the tree is built
  from nothing.

:func:`run_scriptlets` runs each ``post_install`` the way ``_alpm_runscriptlet``
does (``/usr/bin/bash -c ". /tmp/alpm_XXXXXX/.INSTALL; post_install VER"`` in
a chroot, here the sandbox), then ``ldconfig`` as ``_alpm_ldconfig`` does and
``systemd-sysusers`` (what systemd's pacman hook runs).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import heapq
import io
import lzma
import os
import re
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Protocol, TypeVar, cast

import zstandard

from reprobuild.archives.debian.unpack import (
    CONTROL_MAX,
    MEMBERS_MAX,
    UnpackBudget,
    refuse_device,
    refuse_duplicate,
)
from reprobuild.errors import ArchiveError
from reprobuild.globs import fnmatch_regex
from reprobuild.sandbox import Bind, SandboxSpec, run
from reprobuild.tree import (
    SafeRoot,
    TarEntry,
    TarReader,
    TreeError,
    UnsafePathError,
    extract_entry,
    member_parts,
)

__all__ = [
    "ALPM_DB_VERSION",
    "LOCAL_DB",
    "AlpmConflictError",
    "AlpmPackage",
    "AlpmUnpackResult",
    "DbFile",
    "PkgDesc",
    "desc_text",
    "files_text",
    "install_order",
    "package_entries",
    "parse_pkginfo_raw",
    "read_alpm_package",
    "run_scriptlets",
    "unpack_package",
    "write_local_db",
]

LOCAL_DB: Final = "var/lib/pacman/local"
ALPM_DB_VERSION: Final = 9
#: Arch builds pacman with ``-D scriptlet-shell=/usr/bin/bash -D ldconfig=/usr/bin/ldconfig``.
SCRIPTLET_SHELLS: Final = ("/usr/bin/bash", "/bin/bash")
LDCONFIG: Final = "/usr/bin/ldconfig"
SYSUSERS: Final = "/usr/bin/systemd-sysusers"
SCRIPTLET_TIMEOUT: Final = 900.0
#: Fixed stand-in for the ``mkdtemp("alpm_XXXXXX")`` name pacman uses.
SCRIPTLET_DIR: Final = "/tmp/alpm_000000"

_DB_FILES: Final = {b".INSTALL": "install", b".CHANGELOG": "changelog", b".MTREE": "mtree"}
_TMP_NAME: Final = b".reprobuild-tmp~"
_CHUNK: Final = 1 << 16
_REASONS: Final = {"explicit": 0, "0": 0, "depend": 1, "dependency": 1, "1": 1}
_VALIDATION_ORDER: Final = ("none", "md5", "sha256", "pgp")


class AlpmConflictError(TreeError):
    """A package entry collides with a directory/non-directory already in the tree."""


# --------------------------------------------------------------------------
# .PKGINFO as pacman reads it
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PkgDesc:
    """``.PKGINFO`` as libalpm's ``parse_descfile`` keeps it: values verbatim.

    Single values are ``None`` when the key is absent (pacman then writes no
    section) and the last occurrence wins; lists keep file order. Dependency
    strings stay as written, which is what ``alpm_dep_compute_string`` gives
    back for anything makepkg writes (and keeps epochs like ``foo>=1:2-1``).
    """

    name: str
    version: str
    base: str | None = None
    desc: str | None = None
    url: str | None = None
    arch: str | None = None
    builddate: int = 0
    packager: str | None = None
    size: int = 0
    groups: tuple[str, ...] = ()
    licenses: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    optdepends: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    backup: tuple[str, ...] = ()
    xdata: tuple[str, ...] = ()


_SINGLE: Final = {
    "pkgname": "name",
    "pkgver": "version",
    "pkgbase": "base",
    "pkgdesc": "desc",
    "url": "url",
    "arch": "arch",
    "packager": "packager",
    "builddate": "builddate",
    "size": "size",
}
_LISTS: Final = {
    "group": "groups",
    "license": "licenses",
    "replaces": "replaces",
    "depend": "depends",
    "optdepend": "optdepends",
    "conflict": "conflicts",
    "provides": "provides",
    "backup": "backup",
    "xdata": "xdata",
}


def _leading_int(text: str) -> int:
    """strtoll/strtoull: the leading decimal number, 0 when there is none."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def parse_pkginfo_raw(text: str, *, context: str) -> PkgDesc:
    """Parse ``.PKGINFO`` with ``parse_descfile``'s rules.

    A line is ``key = value``: the key ends at the first space, which must
    start `` = ``; other lines and ``#`` comments are skipped, as pacman does.
    """
    single: dict[str, str] = {}
    lists: dict[str, list[str]] = {v: [] for v in _LISTS.values()}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        space = line.find(" ")
        if space < 0 or line[space : space + 3] != " = ":
            continue
        key, value = line[:space], line[space + 3 :]
        if key in _SINGLE:
            single[_SINGLE[key]] = value
        elif key in _LISTS:
            lists[_LISTS[key]].append(value)
    name, version = single.get("name"), single.get("version")
    if not name:
        raise ArchiveError(f"{context}: .PKGINFO has no pkgname")
    if not version or "-" not in version:
        raise ArchiveError(f"{context}: .PKGINFO has no valid pkgver (got {version!r})")
    return PkgDesc(
        name=name,
        version=version,
        base=single.get("base"),
        desc=single.get("desc"),
        url=single.get("url"),
        arch=single.get("arch"),
        builddate=_leading_int(single.get("builddate", "")),
        packager=single.get("packager"),
        size=_leading_int(single.get("size", "")),
        **{k: tuple(v) for k, v in lists.items()},
    )


# --------------------------------------------------------------------------
# Package file access
# --------------------------------------------------------------------------


def _open_tar(handle: BinaryIO, path: Path) -> BinaryIO:
    """The decompressed tar stream, chosen by magic number as libarchive does."""
    magic = handle.read(6)
    handle.seek(0)
    if magic[:4] == b"\x28\xb5\x2f\xfd":
        reader = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True)
        return cast(BinaryIO, io.BufferedReader(reader, _CHUNK))
    if magic == b"\xfd7zXZ\x00":
        return cast(BinaryIO, lzma.LZMAFile(handle))
    if magic[:2] == b"\x1f\x8b":
        return cast(BinaryIO, gzip.GzipFile(fileobj=handle))
    if magic[:3] == b"BZh":
        return cast(BinaryIO, bz2.BZ2File(handle))
    return handle


_CORRUPT: Final = (
    EOFError,
    OSError,
    lzma.LZMAError,
    zlib.error,
    zstandard.ZstdError,
)


def _members(path: Path) -> Iterator[TarEntry]:
    with open(path, "rb") as handle:
        stream = _open_tar(handle, path)
        try:
            yield from TarReader(stream)
        except _CORRUPT as exc:
            raise ArchiveError(f"{path}: package is corrupt: {exc}") from exc


def package_entries(path: Path) -> Iterator[TarEntry]:
    """The tar entries of a package file (``.pkg.tar.zst``, ``.xz``, ``.gz``)."""
    yield from _members(path)


_MTREE_ESCAPES: Final = {
    b"\\": b"\\",
    b"a": b"\a",
    b"b": b"\b",
    b"f": b"\f",
    b"n": b"\n",
    b"r": b"\r",
    b"s": b" ",
    b"t": b"\t",
    b"v": b"\v",
}


def _mtree_unescape(word: bytes) -> bytes:
    """libarchive's mtree name decoding: ``\\NNN`` octal and C-style escapes."""
    out = bytearray()
    i = 0
    while i < len(word):
        c = word[i : i + 1]
        if c == b"\\" and re.fullmatch(rb"[0-3][0-7]{2}", word[i + 1 : i + 4]):
            out.append(int(word[i + 1 : i + 4], 8))
            i += 4
        elif c == b"\\" and word[i + 1 : i + 2] in _MTREE_ESCAPES:
            out += _MTREE_ESCAPES[word[i + 1 : i + 2]]
            i += 2
        else:
            out += c
            i += 1
    return bytes(out)


def _mtree_files(data: bytes, context: str) -> list[bytes]:
    """``build_filelist_from_mtree``: paths without ``./``, dot-names dropped, dirs + ``/``."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"{context}: .MTREE is corrupt: {exc}") from exc
    defaults: dict[bytes, bytes] = {}
    files: list[bytes] = []
    for line in data.split(b"\n"):
        words = line.split()
        if not words or words[0].startswith(b"#"):
            continue
        if words[0] == b"/set":
            defaults.update(w.split(b"=", 1) for w in words[1:] if b"=" in w)  # type: ignore[misc]
            continue
        if words[0] == b"/unset":
            for w in words[1:]:
                if w == b"all":
                    defaults.clear()
                defaults.pop(w, None)
            continue
        if words[0].startswith(b"/"):
            continue
        keywords = dict(defaults)
        keywords.update(w.split(b"=", 1) for w in words[1:] if b"=" in w)  # type: ignore[misc]
        name = _mtree_unescape(words[0])
        name = name[2:] if name.startswith(b"./") else name
        if not name or name.startswith(b"."):
            continue
        if keywords.get(b"type") == b"dir" and not name.endswith(b"/"):
            name += b"/"
        files.append(name)
    return files


def _entry_name(entry: TarEntry) -> bytes:
    """The file-list name libarchive reports: directories end with ``/``."""
    if entry.type == b"5" and not entry.name.endswith(b"/"):
        return entry.name + b"/"
    return entry.name


@dataclass(frozen=True)
class AlpmPackage:
    """A package as pacman loads it before installing: metadata and file list."""

    path: Path
    info: PkgDesc
    files: tuple[bytes, ...]  # sorted by bytes, as _alpm_filelist_sort
    has_mtree: bool

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        return self.info.version


def _small(entry: TarEntry, context: str) -> None:
    """Metadata is read whole into memory: bounded (a bomb would exhaust it)."""
    if entry.size > CONTROL_MAX:
        raise ArchiveError(
            f"{context}: metadata member {_show(entry.name)} claims {entry.size} bytes, "
            f"more than the {CONTROL_MAX} allowed"
        )


def read_alpm_package(path: Path) -> AlpmPackage:
    """Load a package like ``_alpm_pkg_load_internal(full=1)``.

    Stops after ``.PKGINFO`` and ``.MTREE`` when both are found (makepkg puts
    them first); otherwise reads every member to build the file list.
    """
    path = Path(path)
    pkginfo: bytes | None = None
    mtree: list[bytes] | None = None
    scanned: list[bytes] = []
    # Listing the members reads (decompresses) them all: bounded like unpacking.
    budget = UnpackBudget.for_package(None, "size", None)
    for entry in _members(path):
        name = entry.name
        if name in (b".PKGINFO", b".MTREE"):
            _small(entry, str(path))
        elif entry.type == b"0":
            budget.take(entry, str(path))
        if name == b".PKGINFO":
            pkginfo = entry.read()
            size = parse_pkginfo_raw(
                pkginfo.decode("utf-8", "surrogateescape"), context=str(path)
            ).size
            if size:
                budget = UnpackBudget.for_package(size, f".PKGINFO size of {size} bytes", None)
        elif name == b".MTREE":
            mtree = _mtree_files(entry.read(), str(path))
        elif not name.startswith(b"."):
            scanned.append(_entry_name(entry))
        if pkginfo is not None and mtree is not None:
            break
    if pkginfo is None:
        raise ArchiveError(f"{path}: no .PKGINFO (not a pacman package?)")
    info = parse_pkginfo_raw(pkginfo.decode("utf-8", "surrogateescape"), context=str(path))
    files = mtree if mtree is not None else scanned
    return AlpmPackage(path, info, tuple(sorted(files)), mtree is not None)


# --------------------------------------------------------------------------
# Unpacking
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DbFile:
    """A metadata member that pacman extracts into the package's database entry."""

    name: str  # install | changelog | mtree
    data: bytes
    uid: int
    gid: int
    mtime: int


@dataclass(frozen=True)
class AlpmUnpackResult:
    """What installing one package did, as pacman records it in its database.

    ``backup`` pairs each ``backup =`` path with the md5 of the installed
    file (``(null)`` when the package does not ship it, as pacman's printf
    writes a NULL hash).
    """

    package: AlpmPackage
    backup: tuple[tuple[str, str], ...]
    db_files: tuple[DbFile, ...]
    warnings: tuple[str, ...]
    members: int

    @property
    def info(self) -> PkgDesc:
        return self.package.info

    @property
    def name(self) -> str:
        return self.package.info.name

    @property
    def version(self) -> str:
        return self.package.info.version

    @property
    def files(self) -> tuple[bytes, ...]:
        return self.package.files

    def db_file(self, name: str) -> DbFile | None:
        return next((f for f in self.db_files if f.name == name), None)

    @property
    def install_script(self) -> bytes | None:
        found = self.db_file("install")
        return None if found is None else found.data


def _show(name: bytes) -> str:
    return repr(name.decode("utf-8", "backslashreplace"))


def _check_existing(
    safe: SafeRoot, entry: TarEntry, parts: tuple[bytes, ...], where: str
) -> str | None:
    """Apply pacman's rules for what is already at the path; return a warning."""
    parent, base = safe.parent(parts, context=where)
    existing = safe.lstat(safe.child(parent, base))
    if existing is None:
        return None
    shown = "/" + b"/".join(parts).decode("utf-8", "backslashreplace")
    if entry.type == b"5":
        if stat.S_ISDIR(existing.st_mode):
            if stat.S_IMODE(existing.st_mode) != entry.mode & 0o7777:
                return (
                    f"directory permissions differ on {shown}/ filesystem: "
                    f"{stat.S_IMODE(existing.st_mode):o}  package: {entry.mode & 0o7777:o}"
                )
            return None
        if stat.S_ISLNK(existing.st_mode):
            raise AlpmConflictError(
                f"{where}: {shown} exists in filesystem as a symlink, the package has a "
                "directory there (pacman refuses this as a file conflict)"
            )
        return f"{shown} exists in filesystem (a file; replaced by the package's directory)"
    if stat.S_ISDIR(existing.st_mode):
        raise AlpmConflictError(
            f"{where}: {shown} exists in filesystem as a directory; pacman does not "
            "overwrite a directory with a file"
        )
    return f"{shown} exists in filesystem (overwritten)"


def no_extract_match(patterns: Sequence[str], name: bytes) -> bool:
    """pacman's ``NoExtract`` test (libalpm ``_alpm_fnmatch_patterns``): the last
    pattern matching *name* decides, a ``!`` pattern re-includes."""
    for pattern in reversed(patterns):
        inverted = pattern.startswith("!")
        body = pattern[1:] if inverted or pattern.startswith("\\") else pattern
        if fnmatch_regex(body).match(name):
            return not inverted
    return False


def _make_parents(safe: SafeRoot, parts: tuple[bytes, ...], where: str) -> None:
    """Parents NoExtract left out, made as libarchive makes missing parents:
    mode 0755 (pacman's umask 022), root-owned, with the time of extraction."""
    for i in range(1, len(parts)):
        try:
            parent, name = safe.parent(parts[:i], context=where)
        except TreeError:
            continue
        path = safe.child(parent, name)
        if safe.lstat(path) is None:
            os.mkdir(path, 0o755, dir_fd=safe.fd)
            os.chmod(path, 0o755, dir_fd=safe.fd)


def unpack_package(path: Path, root: Path, *, no_extract: Sequence[str] = ()) -> AlpmUnpackResult:
    """Extract the package's payload into *root* as ``pacman -U`` on a fresh root.

    *root* must exist. Metadata members are kept for :func:`write_local_db`.
    Members matching *no_extract* (pacman.conf's ``NoExtract``) are listed in
    the database but not extracted, as pacman does.
    """
    package = read_alpm_package(path)
    info = package.info
    context = f"package {info.name} ({Path(path).name})"
    listed = set(package.files)
    backups = {b.encode("utf-8", "surrogateescape") for b in info.backup}
    digests: dict[bytes, str] = {}
    db_files: list[DbFile] = []
    warnings: list[str] = []
    placed: dict[tuple[bytes, ...], bytes] = {}
    seen: set[tuple[bytes, ...]] = set()
    budget = UnpackBudget.for_package(
        info.size or None, f".PKGINFO size of {info.size} bytes" if info.size else "size", root
    )
    count = 0
    with SafeRoot(root) as safe:
        where = context
        try:
            for entry in _members(package.path):
                count += 1
                if count > MEMBERS_MAX:
                    raise ArchiveError(f"{context}: more than {MEMBERS_MAX} members; refused")
                raw = entry.name
                # refused even where pacman would skip the member as metadata
                parts = member_parts(raw, context=context)
                refuse_device(entry, context, "no pacman package ships device files")
                if parts:
                    refuse_duplicate(entry, parts, seen, context)
                if entry.type == b"0":  # skipped members too: reading them costs as much
                    budget.take(entry, context)
                if raw.startswith(b"."):
                    dbname = _DB_FILES.get(raw)
                    if dbname is not None and entry.type == b"0":
                        _small(entry, context)
                        db_files.append(
                            DbFile(dbname, entry.read(), entry.uid, entry.gid, max(0, entry.mtime))
                        )
                    continue
                where = f"{context}, member {_show(raw)}"
                if not parts:
                    continue
                if parts[-1] == _TMP_NAME:
                    raise UnsafePathError(f"{where}: the member name is reserved")
                if _entry_name(entry) not in listed:
                    warnings.append(
                        f"file not found in file list for package {info.name}. "
                        f"skipping extraction of {raw.decode('utf-8', 'backslashreplace')}"
                    )
                    continue
                if no_extract:
                    if no_extract_match(no_extract, _entry_name(entry)):
                        continue
                    _make_parents(safe, parts, where)
                note = _check_existing(safe, entry, parts, where)
                if note is not None:
                    warnings.append(note)
                want = raw in backups
                digest = extract_entry(
                    safe,
                    entry,
                    parts,
                    uid=entry.uid,
                    gid=entry.gid,
                    placed=placed,
                    context=context,
                    want_md5=want,
                )
                if want and digest is None:
                    digest = _md5_following(safe, parts, where)
                if want and digest is not None:
                    digests[raw] = digest.decode()
        except OSError as exc:  # the file system refused a member (name too long, disk full)
            raise ArchiveError(f"{where}: cannot unpack: {exc.strerror or exc}") from exc
        safe.finish_dir_times()
    backup = tuple(
        (b, digests.get(b.encode("utf-8", "surrogateescape"), "(null)")) for b in info.backup
    )
    return AlpmUnpackResult(package, backup, tuple(db_files), tuple(warnings), count)


def _md5_following(safe: SafeRoot, parts: tuple[bytes, ...], where: str) -> bytes | None:
    """md5 of what a hard link or symlink leads to (pacman's alpm_compute_md5sum opens it)."""
    try:
        stack, st = safe.resolve(parts, follow_last=True, context=where)
    except (TreeError, UnsafePathError):
        return None
    if st is None or not stat.S_ISREG(st.st_mode):
        return None
    fd = os.open(b"/".join(stack), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
    digest = hashlib.md5(usedforsecurity=False)
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest().encode()


# --------------------------------------------------------------------------
# Local database
# --------------------------------------------------------------------------


def _section(out: list[str], header: str, values: Sequence[str]) -> None:
    if values:
        out.append(f"%{header}%\n" + "".join(v + "\n" for v in values) + "\n")


def desc_text(
    info: PkgDesc,
    *,
    installdate: int,
    reason: int = 0,
    validation: Sequence[str] = ("pgp",),
    xdata: bool = True,
    installed_db: str | None = None,
) -> str:
    """A ``desc`` file, section by section as ``_alpm_local_db_write`` prints it."""
    out = [f"%NAME%\n{info.name}\n\n%VERSION%\n{info.version}\n\n"]
    for header, value in (
        ("BASE", info.base),
        ("DESC", info.desc),
        ("URL", info.url),
        ("ARCH", info.arch),
        ("INSTALLED_DB", installed_db),
        ("BUILDDATE", str(info.builddate) if info.builddate else None),
        ("INSTALLDATE", str(installdate) if installdate else None),
        ("PACKAGER", info.packager),
        ("SIZE", str(info.size) if info.size else None),
        ("REASON", str(reason) if reason else None),
    ):
        if value is not None:
            out.append(f"%{header}%\n{value}\n\n")
    _section(out, "GROUPS", info.groups)
    _section(out, "LICENSE", info.licenses)
    _section(out, "VALIDATION", [v for v in _VALIDATION_ORDER if v in validation])
    _section(out, "REPLACES", info.replaces)
    _section(out, "DEPENDS", info.depends)
    _section(out, "OPTDEPENDS", info.optdepends)
    _section(out, "CONFLICTS", info.conflicts)
    _section(out, "PROVIDES", info.provides)
    if xdata:
        _section(out, "XDATA", info.xdata)
    return "".join(out)


def files_text(result: AlpmUnpackResult) -> bytes:
    """A ``files`` file: ``%FILES%`` (sorted) and ``%BACKUP%`` (path, tab, md5)."""
    out = b""
    if result.files:
        out += b"%FILES%\n" + b"".join(f + b"\n" for f in result.files) + b"\n"
    if result.backup:
        out += b"%BACKUP%\n"
        out += b"".join(f"{p}\t{h}\n".encode("utf-8", "surrogateescape") for p, h in result.backup)
        out += b"\n"
    return out


def _validation(value: str) -> tuple[str, ...]:
    methods = tuple(value.split())
    unknown = [m for m in methods if m not in _VALIDATION_ORDER]
    if unknown or not methods:
        raise ValueError(f"unknown pacman validation {value!r} (use pgp, sha256, md5 or none)")
    return methods


def write_local_db(
    root: Path,
    packages: Sequence[AlpmUnpackResult],
    *,
    reasons: Mapping[str, str] | None,
    epoch: int,
    validation: str | Mapping[str, str] = "pgp",
    xdata: bool = True,
    installed_db: Mapping[str, str] | None = None,
) -> list[str]:
    """Register *packages* in pacman's local database under *root*.

    *reasons* maps a package name to ``explicit`` or ``depend`` (absent:
    explicit, as ``pacman -U``). *validation* is what was checked before
    installing: ``pgp`` (signature), ``sha256``, or both, space-separated,
    for all packages or per name. *installed_db* (pacman 7.1+) records the
    repository a package came from. Returns the entry directories written.
    """
    written: list[str] = []
    context = f"pacman database in {root}"
    with SafeRoot(root) as safe:
        parts: tuple[bytes, ...] = ()
        for comp in LOCAL_DB.encode().split(b"/"):
            parts = (*parts, comp)
            safe.make_dir(parts, mode=0o755, uid=0, gid=0, mtime=epoch, context=context)
        local = parts
        version_file = (*local, b"ALPM_DB_VERSION")
        parent, base = safe.parent(version_file, context=context)
        if safe.lstat(safe.child(parent, base)) is None:
            _put(safe, version_file, f"{ALPM_DB_VERSION}\n".encode(), 0, 0, epoch, context)
        for result in packages:
            info = result.info
            entry = f"{info.name}-{info.version}"
            where = f"{context}, entry {entry}"
            directory = (*local, *member_parts(entry, context=where))
            if len(directory) != len(local) + 1:
                raise ArchiveError(f"{where}: package name or version contains '/'")
            safe.make_dir(directory, mode=0o755, uid=0, gid=0, mtime=epoch, context=where)
            reason_name = (reasons or {}).get(info.name, "explicit")
            if reason_name not in _REASONS:
                raise ValueError(f"install reason of {info.name}: {reason_name!r}")
            checked = validation if isinstance(validation, str) else validation.get(info.name)
            if checked is None:
                raise ValueError(f"no validation given for package {info.name}")
            desc = desc_text(
                info,
                installdate=epoch,
                reason=_REASONS[reason_name],
                validation=_validation(checked),
                xdata=xdata,
                installed_db=(installed_db or {}).get(info.name),
            )
            data = desc.encode("utf-8", "surrogateescape")
            _put(safe, (*directory, b"desc"), data, 0, 0, epoch, where)
            _put(safe, (*directory, b"files"), files_text(result), 0, 0, epoch, where)
            for dbfile in result.db_files:
                name = dbfile.name.encode()
                _put(
                    safe,
                    (*directory, name),
                    dbfile.data,
                    dbfile.uid,
                    dbfile.gid,
                    dbfile.mtime,
                    where,
                )
            written.append(f"/{LOCAL_DB}/{entry}")
        safe.finish_dir_times()
    return written


def _put(
    safe: SafeRoot,
    parts: tuple[bytes, ...],
    data: bytes,
    uid: int,
    gid: int,
    mtime: int,
    context: str,
) -> None:
    safe.write_file(
        parts,
        io.BytesIO(data),
        len(data),
        mode=0o644,
        uid=uid,
        gid=gid,
        mtime=mtime,
        context=context,
        want_md5=False,
    )


# --------------------------------------------------------------------------
# Install order
# --------------------------------------------------------------------------


class _HasInfo(Protocol):
    @property
    def info(self) -> PkgDesc: ...


_P = TypeVar("_P", bound=_HasInfo)
_DEP_NAME: Final = re.compile(r"^([^<>=]+)")


def _dep_name(text: str) -> str:
    """The name part of ``name[<>=]version[: description]``."""
    match = _DEP_NAME.match(text.split(": ", 1)[0])
    return match.group(1).strip() if match else text


def install_order(packages: Sequence[_P]) -> list[_P]:
    """Dependencies first, ties (and dependency cycles) broken by name.

    A dependency counts when a package of the set has its name or provides
    it. A cycle is entered at its alphabetically first package, as a stable
    stand-in for pacman's "dependency cycle detected" order.
    """
    by_name = {p.info.name: p for p in packages}
    if len(by_name) != len(packages):
        raise ValueError("install_order: two packages have the same name")
    providers: dict[str, set[str]] = {}
    for p in packages:
        providers.setdefault(p.info.name, set()).add(p.info.name)
        for prov in p.info.provides:
            providers.setdefault(_dep_name(prov), set()).add(p.info.name)
    needs: dict[str, set[str]] = {n: set() for n in by_name}
    for p in packages:
        for dep in p.info.depends:
            wanted = _dep_name(dep)
            found = {wanted} if wanted in by_name else providers.get(wanted, set())
            needs[p.info.name] |= found - {p.info.name}
    users: dict[str, set[str]] = {n: set() for n in by_name}
    for name, deps in needs.items():
        for dep in deps:
            users[dep].add(name)
    ready = [n for n, deps in needs.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    left = dict(needs)
    while left:
        if not ready:
            heapq.heappush(ready, min(left))
        name = heapq.heappop(ready)
        if name not in left:
            continue
        del left[name]
        order.append(name)
        for user in sorted(users[name]):
            if user in left:
                left[user].discard(name)
                if not left[user]:
                    heapq.heappush(ready, user)
    return [by_name[n] for n in order]


# --------------------------------------------------------------------------
# Scriptlets and hooks
# --------------------------------------------------------------------------


def _in_tree(root: Path, path: str, *, executable: bool) -> bool:
    """Whether *path* exists in the tree (symlinks resolved inside it)."""
    parts = tuple(p for p in path.encode().split(b"/") if p)
    with SafeRoot(root) as safe:
        try:
            _, st = safe.resolve(parts, follow_last=True, context=f"looking for {path}")
        except (TreeError, UnsafePathError):
            return False
    if st is None or not stat.S_ISREG(st.st_mode):
        return False
    return not executable or bool(st.st_mode & 0o111)


def _mentions(script: bytes, function: str) -> bool:
    """trans.c ``grep()``: the name outside ``#`` comments, line by line."""
    needle = function.encode()
    return any(needle in line.split(b"#", 1)[0] for line in script.split(b"\n"))


@dataclass(frozen=True)
class _Ran:
    label: str
    returncode: int
    stderr: bytes = field(repr=False, default=b"")


def run_scriptlets(
    root: Path,
    packages: Sequence[AlpmUnpackResult],
    *,
    epoch: int,
    strict: bool = False,
) -> list[str]:
    """Run ``post_install`` scriptlets in order, then ldconfig and sysusers.

    Only when the tree has bash (``/usr/bin/bash``, else ``/bin/bash``);
    without it nothing runs and the list is empty (unpack only). Each
    scriptlet runs as pacman runs it: ``bash -c ". /tmp/alpm_XXXXXX/.INSTALL;
    post_install VERSION"`` chrooted, with umask 022 (here: in the sandbox,
    the directory name fixed, ``umask 022;`` put in front since bwrap keeps
    ours). Like pacman, a failing scriptlet does not stop the others; it is
    reported in the returned line, or raised with *strict*.

    Then ``ldconfig`` when ``/etc/ld.so.conf`` and ``/usr/bin/ldconfig`` exist
    (pacman's ``_alpm_ldconfig``), and ``systemd-sysusers`` when present
    (systemd's pacman hook; it writes ``/etc/passwd``, ``group``, ``shadow``,
    whose dates normalisation fixes). Not run: ``systemd-tmpfiles --create``
    and other hooks, which look at the clock or the host's devices.
    """
    shell = next((s for s in SCRIPTLET_SHELLS if _in_tree(root, s, executable=True)), None)
    if shell is None:
        return []
    ran: list[str] = []
    for result in packages:
        script = result.install_script
        if script is None or not _mentions(script, "post_install"):
            continue
        label = f"post_install {result.name} {result.version}"
        outcome = _run_scriptlet(root, shell, script, result.version, epoch)
        ran.append(_describe(label, outcome, strict))
    if _in_tree(root, "/etc/ld.so.conf", executable=False) and _in_tree(
        root, LDCONFIG, executable=True
    ):
        outcome = _sandboxed(root, (LDCONFIG,), epoch)
        ran.append(_describe("ldconfig", outcome, strict))
    if _in_tree(root, SYSUSERS, executable=True):
        outcome = _sandboxed(root, (SYSUSERS,), epoch)
        ran.append(_describe("systemd-sysusers", outcome, strict))
    return ran


def _describe(label: str, outcome: _Ran, strict: bool) -> str:
    if outcome.returncode == 0:
        return label
    tail = outcome.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
    text = f"{label}: failed with exit code {outcome.returncode}"
    if tail:
        text += " (" + " / ".join(tail) + ")"
    if strict:
        raise TreeError(text)
    return text


def _sandboxed(
    root: Path, command: tuple[str, ...], epoch: int, binds: tuple[Bind, ...] = ()
) -> _Ran:
    result = run(
        SandboxSpec(
            root=root, command=command, epoch=epoch, binds=binds, what="a package scriptlet"
        ),
        timeout=SCRIPTLET_TIMEOUT,
        check=False,
    )
    return _Ran(command[-1], result.returncode, result.stderr)


def _scriptlet_mount(root: Path) -> Path:
    """``$root/tmp`` as pacman makes it (mode 1777 when missing) and the mount point.

    The mount point is created here, inside a real ``tmp`` directory, so that
    nothing on the way is a symlink the sandbox set-up could follow out of the
    tree.
    """
    tmp = root / "tmp"
    st = os.lstat(tmp) if tmp.exists() or tmp.is_symlink() else None
    if st is None:
        tmp.mkdir()
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o1777)
    elif not stat.S_ISDIR(st.st_mode):
        raise TreeError(f"cannot run scriptlets: /tmp in {root} is not a directory (a symlink?)")
    mount = tmp / SCRIPTLET_DIR.rsplit("/", 1)[1]
    if mount.exists() or mount.is_symlink():
        raise TreeError(f"cannot run scriptlets: {SCRIPTLET_DIR} already exists in {root}")
    mount.mkdir(mode=0o700)
    return mount


def _run_scriptlet(root: Path, shell: str, script: bytes, version: str, epoch: int) -> _Ran:
    staging = Path(tempfile.mkdtemp(prefix="reprobuild-alpm-"))
    mount = _scriptlet_mount(root)
    try:
        (staging / ".INSTALL").write_bytes(script)
        os.chmod(staging, 0o755)
        os.chmod(staging / ".INSTALL", 0o644)
        line = f"umask 022; . {SCRIPTLET_DIR}/.INSTALL; post_install {version}"
        return _sandboxed(root, (shell, "-c", line), epoch, (Bind(staging, SCRIPTLET_DIR, "ro"),))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.rmdir(mount)
