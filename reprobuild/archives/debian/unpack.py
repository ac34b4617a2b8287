"""Reading and unpacking Debian binary packages in-process, as dpkg does.

A ``.deb`` is an ``ar`` archive: ``debian-binary`` (``2.0``), then
``control.tar[.xz|.zst|.gz]``, then ``data.tar[.xz|.zst|.gz|.bz2]``; members
whose names start with ``_`` are ignored, as dpkg-deb does. The ``ar``
container is parsed here (it is a 8-byte magic and 60-byte headers) so that
nothing outside Python shapes the result.

:func:`unpack_data` reproduces what ``dpkg --unpack`` does to the file
system, decided member by member in tar order (dpkg's ``tarobject()``):

* a **directory** that already exists, or a symlink resolving to one, is
  kept as it is: dpkg never changes the mode, owner or mtime of an existing
  directory. A new one gets the member's mode and owner.
* a **symlink** over an existing directory (or over a symlink to the same
  directory) is not created: dpkg never replaces a directory by a link.
* **files**, hard links, device nodes and FIFOs replace whatever non-directory
  is in the way; a directory in the way is an error (dpkg would need a
  ``Replaces`` to take it over).
* **owners** come from the member's user and group *names* looked up in the
  tree's own ``/etc/passwd`` and ``/etc/group`` (what dpkg sees inside the
  chroot), falling back to the numeric ids; modes are applied with chmod
  after chown, so setuid and setgid bits survive.
* **mtimes** of everything are taken from the archive. dpkg leaves new
  directories with the time of the unpack (creating entries inside them
  updates it); here they get the archive's mtime after the package is done,
  so the result does not depend on the clock. Directories that existed keep
  theirs, changed by the new entries (those are clamped at normalisation).
* **conffiles** are written as ``NAME.dpkg-new`` and left for configuration,
  exactly like dpkg, unless ``conffiles_in_place`` is asked for.

Differences from dpkg, all on the side of safety: absolute member names,
``..`` components, writes through symlinks that leave the tree and hard
links to anything but an earlier member of the same package are refused
(dpkg strips a leading ``/``, accepts ``..`` and would follow a symlink out of
``--root``); a missing parent directory is an error (as in dpkg). Hostile
packages (tests/reliability/test_hostile_packages.py) meet these rules:

* **setuid/setgid files** are installed as dpkg installs them: Debian ships
  them (``passwd``, ``su``, ``mount``); the sandbox mounts the tree nosuid.
* **character and block devices and FIFOs** are refused: Debian Policy 10.6
  forbids device files and named pipes in packages (dpkg would create them;
  a 0666 node for a disk in an image is a hole, and a FIFO where a file is
  read, a conffile say, would hang the build).
* **files in dpkg's database** (``/var/lib/dpkg``, reached by any path) are
  refused: reprobuild writes it as dpkg does, and real packages ship only
  its directories there.
* **a path that appears twice** is refused: dpkg keeps the last copy and
  lists the path twice in its database; dpkg-deb never builds such a package
  (and what a reader of the archive sees first is not what gets installed).
* **extended attributes** (pax ``SCHILY.xattr.*``) are refused, as dpkg
  refuses pax headers in ``data.tar``.
* **sizes are bounded** before a byte is written: the regular files of a
  package may not add up to more than twice its ``Installed-Size`` plus
  :data:`SIZE_SLACK` (dpkg-gencontrol computes ``Installed-Size`` from those
  files, so real packages stay below it; 8 GiB without the field), nor to
  more than the file system has free; ``control.tar`` may not expand beyond
  :data:`CONTROL_MAX`, a package may not hold more than :data:`MEMBERS_MAX`
  members. A decompression bomb or a member claiming a terabyte is an error
  naming the package and the member, and no disk is filled.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, BinaryIO, Final, cast

import zstandard

from reprobuild.errors import ArchiveError
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
    "Conffile",
    "ControlFile",
    "DebPackage",
    "UnpackBudget",
    "UnpackResult",
    "merged_usr_dirs",
    "open_data",
    "read_deb",
    "setup_merged_usr",
    "unpack_data",
]

_AR_MAGIC: Final = b"!<arch>\n"
_AR_HEADER: Final = 60
_SUFFIXES: Final = ("", ".gz", ".xz", ".zst", ".bz2")
_CONTROL_SUFFIXES: Final = ("", ".gz", ".xz", ".zst")
_TMP_NAME: Final = b".reprobuild-tmp~"
_ADMINDIR: Final = b"var/lib/dpkg"
_CHUNK_SIZE: Final = 1 << 16
CONTROL_MAX: Final = 64 << 20
"""Largest decompressed control.tar (Debian's largest are a few MiB of md5sums)."""
MEMBERS_MAX: Final = 1_000_000
"""Most members in one data.tar: far more than any Debian package has."""
SIZE_SLACK: Final = 64 << 20
UNDECLARED_MAX: Final = 8 << 30
"""The bound on a package's file data when it declares no Installed-Size."""
FREE_RESERVE: Final = 64 << 20
"""Left free on the tree's file system whatever the package says."""
_DECOMPRESS_ERRORS: Final = (
    EOFError,
    OSError,
    lzma.LZMAError,
    zstandard.ZstdError,
    zlib.error,
)


@dataclass(frozen=True)
class ControlFile:
    """One member of control.tar other than ``control`` itself."""

    name: str
    data: bytes
    mode: int
    mtime: int
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Conffile:
    """An entry of the ``conffiles`` control file."""

    path: str
    remove_on_upgrade: bool = False


def parse_control(text: bytes, *, context: str) -> tuple[tuple[str, str], ...]:
    """Parse one deb822 stanza as dpkg does: (name, value) in file order.

    Values lose the white space after the colon and at their very end; the
    lines of a multi-line value are otherwise kept verbatim (continuation
    lines with their leading space, a synopsis with its trailing space),
    joined by newlines.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArchiveError(f"{context}: control file is not UTF-8") from exc
    lines = decoded.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    fields: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise ArchiveError(f"{context}: control file has more than one stanza")
        if line.startswith("#"):
            continue
        if line[0] in " \t":
            if not fields:
                raise ArchiveError(f"{context}: control line {number} continues nothing")
            fields[-1][1].append(line)
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name:
            raise ArchiveError(f"{context}: control line {number} is not 'Field: value'")
        if name.lower() in seen:
            raise ArchiveError(f"{context}: control field {name!r} appears twice")
        seen.add(name.lower())
        fields.append((name, [value.lstrip()]))
    out = []
    for name, lines in fields:
        value = "\n".join(lines).rstrip()
        out.append((name, value))
    return tuple(out)


@dataclass(frozen=True)
class DebPackage:
    """A ``.deb``'s control data: fields in file order and the other control files."""

    path: Path
    fields: tuple[tuple[str, str], ...]
    control_files: tuple[ControlFile, ...]
    control_compression: str
    data_compression: str
    _index: Mapping[str, str] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {k.lower(): v for k, v in self.fields})

    def get(self, name: str, default: str | None = None) -> str | None:
        """A control field by case-insensitive name."""
        return self._index.get(name.lower(), default)

    def _required(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise ArchiveError(f"{self.path}: control field {name} is missing")
        return value

    @property
    def name(self) -> str:
        return self._required("Package")

    @property
    def version(self) -> str:
        return self._required("Version")

    @property
    def architecture(self) -> str:
        return self._required("Architecture")

    @property
    def multi_arch(self) -> str:
        return (self.get("Multi-Arch") or "no").lower()

    @property
    def essential(self) -> bool:
        return (self.get("Essential") or "").lower() == "yes"

    @property
    def protected(self) -> bool:
        return (self.get("Protected") or "").lower() == "yes"

    @property
    def pre_depends(self) -> str:
        return self.get("Pre-Depends") or ""

    @property
    def depends(self) -> str:
        return self.get("Depends") or ""

    @property
    def recommends(self) -> str:
        return self.get("Recommends") or ""

    @property
    def provides(self) -> str:
        return self.get("Provides") or ""

    @property
    def installed_name(self) -> str:
        """dpkg's info-database name: ``NAME:ARCH`` for Multi-Arch: same."""
        return f"{self.name}:{self.architecture}" if self.multi_arch == "same" else self.name

    def control_file(self, name: str) -> ControlFile | None:
        for member in self.control_files:
            if member.name == name:
                return member
        return None

    @property
    def scripts(self) -> dict[str, bytes]:
        """Every control file but ``control``: scripts, md5sums, triggers, ..."""
        return {member.name: member.data for member in self.control_files}

    @cached_property
    def conffiles(self) -> tuple[Conffile, ...]:
        """The ``conffiles`` entries, parsed with dpkg's rules."""
        member = self.control_file("conffiles")
        if member is None:
            return ()
        out = []
        for line in member.data.decode("utf-8", "surrogateescape").split("\n"):
            line = line.rstrip()
            if not line:
                continue
            flag_removal = False
            if not line.startswith("/"):
                flag, _, rest = line.partition(" ")
                if flag != "remove-on-upgrade" or not rest.startswith("/"):
                    raise ArchiveError(f"{self.path}: bad conffiles line {line!r}")
                line, flag_removal = rest, True
            out.append(Conffile(line, flag_removal))
        return tuple(out)


# --------------------------------------------------------------------------
# ar container
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _ArMember:
    name: str
    offset: int
    size: int


def _ar_members(handle: IO[bytes], path: Path) -> Iterator[_ArMember]:
    if handle.read(8) != _AR_MAGIC:
        raise ArchiveError(f"{path}: not a Debian package (no ar magic)")
    offset = 8
    while True:
        header = handle.read(_AR_HEADER)
        if not header:
            return
        if len(header) != _AR_HEADER or header[58:60] != b"`\n":
            raise ArchiveError(f"{path}: malformed ar header at offset {offset}")
        raw_name = header[:16].rstrip(b" ")
        if raw_name.endswith(b"/") and raw_name not in (b"/", b"//"):
            raw_name = raw_name[:-1]
        size_field = header[48:58].strip()
        if not size_field.isdigit():
            raise ArchiveError(f"{path}: malformed ar member size at offset {offset}")
        size = int(size_field)
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            raise ArchiveError(f"{path}: ar member name {raw_name!r} is not ASCII") from None
        start = offset + _AR_HEADER
        yield _ArMember(name, start, size)
        offset = start + size + (size & 1)
        handle.seek(offset)


class _Slice(io.RawIOBase):
    """A read-only window [offset, offset+size) of a file."""

    def __init__(self, handle: IO[bytes], offset: int, size: int) -> None:
        self.handle = handle
        self.pos = offset
        self.end = offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.end - self.pos)
        if n <= 0:
            return 0
        self.handle.seek(self.pos)
        data = self.handle.read(n)
        if len(data) != n:
            raise ArchiveError("package file is truncated")
        buffer[:n] = data
        self.pos += n
        return n


def _decompressed(window: _Slice, compression: str) -> BinaryIO:
    raw = cast(BinaryIO, io.BufferedReader(window, _CHUNK_SIZE))
    if compression == "":
        return raw
    if compression == ".xz":
        return cast(BinaryIO, lzma.LZMAFile(raw))
    if compression == ".gz":
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw))
    if compression == ".bz2":
        return cast(BinaryIO, bz2.BZ2File(raw))
    if compression == ".zst":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return cast(BinaryIO, io.BufferedReader(reader, _CHUNK_SIZE))
    raise ArchiveError(f"unsupported compression {compression!r}")  # pragma: no cover


@dataclass(frozen=True)
class _Layout:
    control: _ArMember
    control_compression: str
    data: _ArMember
    data_compression: str


def _layout(handle: IO[bytes], path: Path) -> _Layout:
    members = _ar_members(handle, path)
    first = next(members, None)
    if first is None or first.name != "debian-binary":
        raise ArchiveError(f"{path}: first member is not debian-binary")
    handle.seek(first.offset)
    version = handle.read(first.size)
    if not version.startswith(b"2.") or not version.endswith(b"\n"):
        raise ArchiveError(f"{path}: unsupported package format {version!r}")
    control: tuple[_ArMember, str] | None = None
    for member in members:
        if member.name.startswith("_"):
            continue
        if control is None:
            suffix = member.name.removeprefix("control.tar")
            if not member.name.startswith("control.tar") or suffix not in _CONTROL_SUFFIXES:
                raise ArchiveError(f"{path}: expected control.tar, found {member.name!r}")
            control = (member, suffix)
            continue
        suffix = member.name.removeprefix("data.tar")
        if not member.name.startswith("data.tar") or suffix not in _SUFFIXES:
            raise ArchiveError(f"{path}: expected data.tar, found {member.name!r}")
        return _Layout(control[0], control[1], member, suffix)
    raise ArchiveError(f"{path}: package has no {'data' if control else 'control'} member")


# --------------------------------------------------------------------------
# Reading control data
# --------------------------------------------------------------------------


def read_deb(path: Path) -> DebPackage:
    """Read a package's control information (not its data)."""
    path = Path(path)
    with open(path, "rb") as handle:
        layout = _layout(handle, path)
        raw = _Slice(handle, layout.control.offset, layout.control.size)
        try:
            data = _decompressed(raw, layout.control_compression).read(CONTROL_MAX + 1)
        except _DECOMPRESS_ERRORS as exc:
            raise ArchiveError(f"{path}: control.tar is corrupt: {exc}") from exc
        if len(data) > CONTROL_MAX:
            raise ArchiveError(
                f"{path}: control.tar expands to more than {_human(CONTROL_MAX)}; "
                "refused as a decompression bomb"
            )
    control_text: bytes | None = None
    files: list[ControlFile] = []
    for entry in TarReader(io.BytesIO(data)):
        parts = member_parts(entry.name, context=str(path))
        if not parts:
            continue
        if len(parts) != 1 or entry.type != b"0":
            raise ArchiveError(f"{path}: control member {entry.name!r} is not a plain file")
        content = entry.read()
        name = parts[0].decode("utf-8", "surrogateescape")
        if name == "control":
            control_text = content
        else:
            files.append(ControlFile(name, content, entry.mode, entry.mtime, entry.uid, entry.gid))
    if control_text is None:
        raise ArchiveError(f"{path}: control.tar has no control file")
    return DebPackage(
        path=path,
        fields=parse_control(control_text, context=str(path)),
        control_files=tuple(files),
        control_compression=layout.control_compression,
        data_compression=layout.data_compression,
    )


# --------------------------------------------------------------------------
# Unpacking data
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnpackResult:
    """What unpacking one package did, as dpkg would record it.

    ``paths`` is dpkg's ``.list``: every member in tar order as ``/path``,
    ``/.`` for the root. ``md5sums`` are the digests of regular files and hard
    links in tar order, computed only when the package ships no ``md5sums``
    (dpkg then writes its own from them).
    """

    package: DebPackage
    paths: tuple[str, ...]
    conffiles: tuple[Conffile, ...]
    md5sums: tuple[tuple[str, str], ...]
    members: int


def _id_map(safe: SafeRoot, rel: bytes) -> dict[str, int]:
    try:
        stack, st = safe.resolve(rel.split(b"/"), follow_last=True, context="owner lookup")
    except (TreeError, UnsafePathError):
        return {}
    if st is None or not stat.S_ISREG(st.st_mode):
        return {}
    fd = os.open(b"/".join(stack), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
    with os.fdopen(fd, "rb") as handle:
        text = handle.read().decode("utf-8", "surrogateescape")
    ids: dict[str, int] = {}
    for line in text.split("\n"):
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            ids.setdefault(fields[0], int(fields[2]))
    return ids


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


@dataclass
class UnpackBudget:
    """How many bytes of file data a package may still write, and why that many.

    ``declared`` is what the package says it installs (Installed-Size, or
    pacman's ``size``), ``None`` when it says nothing.
    """

    left: int
    why: str

    @classmethod
    def for_package(cls, declared: int | None, what: str, root: Path | None) -> UnpackBudget:
        """The bound for a package; also by the free space of *root* if given."""
        if declared is not None:
            limit = declared * 2 + SIZE_SLACK
            why = f"twice its {what} plus {_human(SIZE_SLACK)}"
        else:
            limit, why = UNDECLARED_MAX, f"the limit for a package without {what}"
        if root is not None:
            fs = os.statvfs(root)
            free = max(0, fs.f_bavail * fs.f_frsize - FREE_RESERVE)
            if free < limit:
                limit, why = free, f"the space free on the file system of {root}"
        return cls(limit, f"{_human(limit)}, {why}")

    def take(self, entry: TarEntry, context: str) -> None:
        """Count a regular file before a byte of it is written."""
        if entry.size > self.left:
            raise ArchiveError(
                f"{context}: member {entry.name.decode('utf-8', 'backslashreplace')!r} "
                f"claims {_human(entry.size)}, more than the package may unpack "
                f"(at most {self.why})"
            )
        self.left -= entry.size


def refuse_device(entry: TarEntry, context: str, rule: str) -> None:
    """Character and block devices are never unpacked (see the module docstring)."""
    if entry.type in (b"3", b"4"):
        kind = "character" if entry.type == b"3" else "block"
        raise ArchiveError(
            f"{context}: member {entry.name.decode('utf-8', 'backslashreplace')!r} is a "
            f"{kind} device ({entry.devmajor}, {entry.devminor}); {rule}"
        )


def refuse_duplicate(
    entry: TarEntry, parts: tuple[bytes, ...], seen: set[tuple[bytes, ...]], context: str
) -> None:
    """A path may appear once: otherwise what a reader of the archive sees first
    is not what gets installed."""
    if parts in seen:
        raise ArchiveError(
            f"{context}: member {entry.name.decode('utf-8', 'backslashreplace')!r} appears "
            "twice in the archive (the installer would keep the last copy)"
        )
    seen.add(parts)


def _refuse_hostile(
    entry: TarEntry, parts: tuple[bytes, ...], seen: set[tuple[bytes, ...]], context: str
) -> None:
    """The members dpkg-deb never builds and a distribution never ships."""
    rule = "packages may not contain device files or named pipes (Debian Policy 10.6)"
    refuse_device(entry, context, rule)
    if entry.type == b"6":
        raise ArchiveError(
            f"{context}: member {entry.name.decode('utf-8', 'backslashreplace')!r} is a "
            f"named pipe; {rule}"
        )
    if entry.xattrs:
        raise ArchiveError(
            f"{context}: member {entry.name.decode('utf-8', 'backslashreplace')!r} carries "
            f"extended attributes ({', '.join(k for k, _ in entry.xattrs)}); dpkg refuses "
            "pax headers in data.tar"
        )
    refuse_duplicate(entry, parts, seen, context)


def decompressed_data(package: DebPackage, *, limit: int) -> bytes | None:
    """The whole data.tar of a package, or None if it is larger than *limit*.

    Lets a caller decompress packages ahead, on other CPUs (liblzma, zlib and
    zstd release the GIL), while it unpacks earlier ones in order; a data.tar
    over *limit* is left to be streamed by :func:`unpack_data`.
    """
    with open(package.path, "rb") as handle:
        layout = _layout(handle, package.path)
        stream = _decompressed(
            _Slice(handle, layout.data.offset, layout.data.size), layout.data_compression
        )
        data = stream.read(limit + 1)
    return None if len(data) > limit else data


def open_data(handle: IO[bytes], path: Path) -> BinaryIO:
    """The decompressed ``data.tar`` of the package open in *handle*, as a stream."""
    layout = _layout(handle, path)
    return _decompressed(
        _Slice(handle, layout.data.offset, layout.data.size), layout.data_compression
    )


def unpack_data(
    path: Path, root: Path, *, conffiles_in_place: bool = False, data: bytes | None = None
) -> UnpackResult:
    """Extract the package's data.tar into *root* with dpkg's semantics.

    *root* must exist. Conffiles go to ``NAME.dpkg-new`` (as after ``dpkg
    --unpack``) unless *conffiles_in_place*. *data*, if given, is the
    package's data.tar already decompressed (see :func:`decompressed_data`).
    """
    package = read_deb(path)
    name = f"{package.get('Package') or path.name} {package.get('Version') or ''}".strip()
    context = f"package {name} ({path.name})"
    conffiles = package.conffiles
    deferred = {
        member_parts(c.path.lstrip("/"), context=context)
        for c in conffiles
        if not c.remove_on_upgrade and not conffiles_in_place
    }
    want_md5 = package.control_file("md5sums") is None
    paths: list[str] = []
    md5sums: list[tuple[str, str]] = []
    digests: dict[tuple[bytes, ...], str] = {}
    placed: dict[tuple[bytes, ...], bytes] = {}
    seen: set[tuple[bytes, ...]] = set()
    declared = (package.get("Installed-Size") or "").strip()
    budget = UnpackBudget.for_package(
        int(declared) * 1024 if declared.isdigit() else None,
        f"Installed-Size of {declared} KiB" if declared.isdigit() else "Installed-Size",
        root,
    )
    count = 0
    with open(path, "rb") as handle, SafeRoot(root) as safe:
        users = _id_map(safe, b"etc/passwd")
        groups = _id_map(safe, b"etc/group")
        layout = _layout(handle, package.path)
        stream = (
            cast(BinaryIO, io.BytesIO(data))
            if data is not None
            else _decompressed(
                _Slice(handle, layout.data.offset, layout.data.size), layout.data_compression
            )
        )
        where = "data.tar"
        try:
            for entry in TarReader(stream):
                count += 1
                where = f"member {entry.name.decode('utf-8', 'backslashreplace')!r}"
                if count > MEMBERS_MAX:
                    raise ArchiveError(
                        f"{context}: data.tar has more than {MEMBERS_MAX} members; refused"
                    )
                parts = member_parts(entry.name, context=context)
                if parts and parts[-1] == _TMP_NAME:
                    raise UnsafePathError(f"{context}: member name {entry.name!r} is reserved")
                _refuse_hostile(entry, parts, seen, context)
                listed = (
                    "/" + b"/".join(parts).decode("utf-8", "surrogateescape") if parts else "/."
                )
                paths.append(listed)
                if not parts:
                    if entry.type != b"5":
                        raise ArchiveError(f"{context}: the root member is not a directory")
                    continue
                if entry.type == b"0":
                    budget.take(entry, context)
                if entry.type != b"5":
                    parent, _ = safe.parent(parts, context=context)
                    if parent == _ADMINDIR or parent.startswith(_ADMINDIR + b"/"):
                        raise ArchiveError(
                            f"{context}: member {where[7:]} would land in dpkg's database "
                            f"(/{parent.decode('utf-8', 'backslashreplace')})"
                        )
                digest = extract_entry(
                    safe,
                    entry,
                    parts,
                    uid=users.get(entry.uname, entry.uid) if entry.uname else entry.uid,
                    gid=groups.get(entry.gname, entry.gid) if entry.gname else entry.gid,
                    placed=placed,
                    context=context,
                    suffix=b".dpkg-new" if parts in deferred else b"",
                    want_md5=want_md5,
                )
                if want_md5 and entry.type == b"0" and digest is not None:
                    digests[parts] = digest.decode()
                    md5sums.append((listed, digests[parts]))
                elif want_md5 and entry.type == b"1":
                    linked_digest = digests.get(member_parts(entry.linkname, context=context))
                    if linked_digest is not None:
                        md5sums.append((listed, linked_digest))
                        digests[parts] = linked_digest
        except _DECOMPRESS_ERRORS as exc:
            # Corrupt compressed data, or the file system refusing a member
            # (a name too long, no space left): an error naming both.
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ArchiveError(f"{context}: cannot unpack {where}: {detail}") from exc
        safe.finish_dir_times()
    return UnpackResult(
        package=package,
        paths=tuple(paths),
        conffiles=conffiles,
        md5sums=tuple(md5sums),
        members=count,
    )


# --------------------------------------------------------------------------
# merged /usr
# --------------------------------------------------------------------------

_MERGED_USR_EXTRA: Final[Mapping[str, tuple[str, ...]]] = {
    "amd64": ("lib32", "lib64", "libx32"),
    "i386": ("lib64", "libx32"),
    "mips": ("lib32", "lib64"),
    "mipsel": ("lib32", "lib64"),
    "mips64el": ("lib32", "lib64", "libo32"),
    "powerpc": ("lib64",),
    "ppc64": ("lib32", "lib64"),
    "ppc64el": ("lib64",),
    "s390x": ("lib32",),
    "sparc": ("lib64",),
    "sparc64": ("lib32", "lib64"),
    "x32": ("lib32", "lib64", "libx32"),
}


def merged_usr_dirs(arch: str) -> tuple[str, ...]:
    """The top-level directories that become links into /usr for *arch*."""
    if arch.startswith("hurd-"):
        return ()
    return ("bin", "sbin", "lib", *_MERGED_USR_EXTRA.get(arch, ()))


def setup_merged_usr(root: Path, arch: str) -> tuple[str, ...]:
    """Create ``/bin -> usr/bin`` and friends before any package is unpacked.

    The same links debootstrap's ``setup_merged_usr`` and mmdebstrap's
    ``merged-usr`` hook create (``bin sbin lib`` plus the architecture's
    multilib directories, e.g. ``lib32 lib64 libx32`` on amd64), each with
    an empty ``/usr/DIR`` (mode 0755, root-owned) behind it. Packages that
    still ship files under ``/bin`` then land in ``/usr/bin`` through a link
    that stays inside the tree, and their ``./bin/`` directory members find
    an existing directory (dpkg keeps it), exactly as in a debootstrap
    chroot. Later conversion by the ``usrmerge`` package finds nothing to do.
    Returns the directories linked.
    """
    dirs = merged_usr_dirs(arch)
    with SafeRoot(root) as safe:
        if safe.lstat(b"usr") is None:
            safe.make_dir((b"usr",), mode=0o755, uid=0, gid=0, mtime=0, context="merged /usr")
        for name in dirs:
            raw = name.encode()
            safe.make_dir((b"usr", raw), mode=0o755, uid=0, gid=0, mtime=0, context="merged /usr")
            existing = safe.lstat(raw)
            if existing is not None and not stat.S_ISLNK(existing.st_mode):
                raise TreeError(f"cannot merge /usr: /{name} already exists and is not a symlink")
            if existing is None:
                os.symlink(b"usr/" + raw, raw, dir_fd=safe.fd)
        safe.discard_dir_times()
    return dirs
