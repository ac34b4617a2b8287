"""dpkg's database, written as ``dpkg --unpack`` leaves it.

After :func:`reprobuild.archives.debian.unpack.unpack_data`, :func:`record_unpacked`
writes what dpkg writes for the same package, byte for byte (checked against
dpkg 1.21 in ``tests/steps/test_dpkg_ground_truth.py``):

* ``/var/lib/dpkg/status``: one stanza per package, sorted by name then
  architecture, fields in dpkg's ``fieldinfos`` order (Package, Essential,
  Protected, Status, Priority, Section, Installed-Size, Origin, Maintainer,
  Bugs, Architecture, Multi-Arch, Source, Version, Config-Version, Replaces,
  Provides, Depends, Pre-Depends, Recommends, Suggests, Breaks, Conflicts,
  Enhances, Conffiles, Description, Triggers-Pending, Triggers-Awaited), then
  the other fields in their control-file order. Values are re-serialised as
  dpkg does: dependency fields normalised (``a | b (>= 1)``), epoch ``0:``
  dropped from versions, Priority and Multi-Arch lower-cased, ``Essential:
  no`` and ``Multi-Arch: no`` omitted. Conffiles read ``newconffile`` until
  configuration.
* ``info/PKG.list`` (``PKG:ARCH`` for ``Multi-Arch: same``), every control
  file but ``control`` copied with its mode and mtime (names with a dot are
  skipped, as dpkg does), ``md5sums`` generated from the unpacked files when
  the package has none.
* trigger interests: ``triggers/File`` for paths, ``triggers/NAME`` for
  explicit triggers.

Not written: ``status-old`` and ``available-old`` (backups of the previous
run, removed at normalisation anyway), dpkg's log. Activating a trigger of an
already configured package is not modelled and raises :class:`DpkgDbError`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reprobuild.archives.debian.unpack import DebPackage, UnpackResult
from reprobuild.errors import ArchiveError, ReprobuildError
from reprobuild.tree import SafeRoot, TreeError

__all__ = [
    "DpkgDbError",
    "format_status_stanza",
    "init_admindir",
    "mark_installed",
    "normalise_dependency_field",
    "normalise_version",
    "read_status",
    "record_unpacked",
]

ADMINDIR: Final = b"var/lib/dpkg"

_FIELD_ORDER: Final = (
    "Package",
    "Essential",
    "Protected",
    "Status",
    "Priority",
    "Section",
    "Installed-Size",
    "Origin",
    "Maintainer",
    "Bugs",
    "Architecture",
    "Multi-Arch",
    "Source",
    "Version",
    "Config-Version",
    "Replaces",
    "Provides",
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Breaks",
    "Conflicts",
    "Enhances",
    "Conffiles",
    "Description",
    "Triggers-Pending",
    "Triggers-Awaited",
)
_KNOWN: Final = {name.lower(): name for name in _FIELD_ORDER}
_NICKNAMES: Final = {"recommended": "Recommends", "optional": "Suggests", "class": "Priority"}
#: Known to dpkg but never written to the status file.
_DROPPED: Final = frozenset(
    {
        "filename",
        "size",
        "md5sum",
        "msdos-filename",
        "revision",
        "package-revision",
        "package_revision",
    }
)
_DEPENDENCY_FIELDS: Final = frozenset(
    {
        "Replaces",
        "Provides",
        "Depends",
        "Pre-Depends",
        "Recommends",
        "Suggests",
        "Breaks",
        "Conflicts",
        "Enhances",
    }
)
_PRIORITIES: Final = ("required", "important", "standard", "optional", "extra")
_MULTIARCH: Final = ("no", "same", "foreign", "allowed")
_RELATIONS: Final = {"<<": "<<", "<=": "<=", "=": "=", ">=": ">=", ">>": ">>", "<": "<=", ">": ">="}
_POSSIBILITY: Final = re.compile(
    r"^\s*(?P<name>[^\s:(|,]+)(?::(?P<arch>[^\s(|,]+))?"
    r"\s*(?:\(\s*(?P<rel><<|<=|>=|>>|=|<|>)\s*(?P<version>[A-Za-z0-9.+~:-]+)\s*\))?\s*$"
)


class DpkgDbError(ReprobuildError):
    """The dpkg database cannot be updated as asked."""


def normalise_version(version: str) -> str:
    """A version as dpkg prints it: ``0:`` dropped unless needed."""
    version = version.strip()
    epoch, colon, rest = version.partition(":")
    if not colon:
        return version
    if not epoch.isdigit():
        raise ArchiveError(f"bad epoch in version {version!r}")
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    shown = upstream + (f"-{revision}" if revision else "")
    if int(epoch) != 0 or ":" in shown:
        return f"{int(epoch)}:{shown}"
    return shown


def normalise_dependency_field(value: str, *, field: str = "Depends") -> str:
    """Re-serialise a relationship field as dpkg's ``varbufdependency`` does."""
    groups = []
    for group in value.split(","):
        alternatives = []
        for possibility in group.split("|"):
            match = _POSSIBILITY.match(possibility)
            if match is None:
                raise ArchiveError(f"cannot parse {field} entry {possibility.strip()!r}")
            text = match["name"]
            if match["arch"]:
                text += ":" + match["arch"]
            if match["rel"]:
                text += f" ({_RELATIONS[match['rel']]} {normalise_version(match['version'])})"
            alternatives.append(text)
        groups.append(" | ".join(alternatives))
    return ", ".join(groups)


def _status_fields(
    package: DebPackage, *, status: str, conffiles: Sequence[str]
) -> list[tuple[str, str]]:
    known: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    for name, value in package.fields:
        lower = name.lower()
        canonical = _NICKNAMES.get(lower) or _KNOWN.get(lower)
        if lower in _DROPPED:
            continue
        if canonical is None:
            extra.append((name, value))
            continue
        if canonical in ("Status", "Config-Version", "Conffiles"):
            continue  # state of the installed system, never taken from a .deb
        if canonical in ("Essential", "Protected"):
            if value.lower() != "yes":
                continue
            value = "yes"
        elif canonical == "Priority":
            value = value.lower() if value.lower() in _PRIORITIES else value
        elif canonical == "Multi-Arch":
            if value.lower() not in _MULTIARCH:
                raise ArchiveError(f"{package.path}: unknown Multi-Arch value {value!r}")
            if value.lower() == "no":
                continue
            value = value.lower()
        elif canonical == "Version":
            value = normalise_version(value)
        elif canonical in _DEPENDENCY_FIELDS:
            value = normalise_dependency_field(value, field=canonical)
        if value:
            known[canonical] = value
    known["Status"] = status
    if conffiles:
        known["Conffiles"] = "\n" + "\n".join(f" {line}" for line in conffiles)
    return [(name, known[name]) for name in _FIELD_ORDER if name in known] + extra


def format_status_stanza(fields: Iterable[tuple[str, str]]) -> str:
    """Fields as dpkg writes them (a value starting with a newline gets no space)."""
    out = []
    for name, value in fields:
        out.append(f"{name}:{value}\n" if value.startswith("\n") else f"{name}: {value}\n")
    return "".join(out)


def _parse_stanzas(text: str) -> list[list[tuple[str, str]]]:
    stanzas: list[list[tuple[str, str]]] = []
    current: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        if not line.strip():
            if current:
                stanzas.append([(n, "\n".join(v)) for n, v in current])
                current = []
            continue
        if line[0] in " \t":
            current[-1][1].append(line)
            continue
        name, _, value = line.partition(":")
        current.append((name, [value.lstrip()]))
    if current:
        stanzas.append([(n, "\n".join(v)) for n, v in current])
    return stanzas


def _key(fields: Sequence[tuple[str, str]]) -> tuple[str, str]:
    index = {k.lower(): v for k, v in fields}
    return index.get("package", ""), index.get("architecture", "")


# --------------------------------------------------------------------------
# File helpers (all inside the root, never through symlinks)
# --------------------------------------------------------------------------


def _admin(safe: SafeRoot, *rel: bytes) -> bytes:
    parts = (*ADMINDIR.split(b"/"), *(p for r in rel for p in r.split(b"/")))
    parent, name = safe.parent(parts, context="dpkg database")
    return safe.child(parent, name)


def _write(
    safe: SafeRoot,
    rel: bytes,
    data: bytes,
    *,
    mode: int = 0o644,
    mtime: int | None = None,
    uid: int = 0,
    gid: int = 0,
) -> None:
    path = _admin(safe, rel)
    tmp = path + b".reprobuild-new"
    fd = os.open(
        tmp,
        os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=safe.fd,
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        safe.chown(fd, uid, gid, "dpkg database")
        os.fchmod(fd, mode)
        if mtime is not None:
            os.utime(fd, ns=(mtime * 10**9, mtime * 10**9))
    finally:
        os.close(fd)
    existing = safe.lstat(path)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise DpkgDbError(f"{path.decode()} is a directory")
    os.rename(tmp, path, src_dir_fd=safe.fd, dst_dir_fd=safe.fd)


def _read(safe: SafeRoot, rel: bytes) -> bytes | None:
    path = _admin(safe, rel)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def _ensure(safe: SafeRoot, rel: bytes, data: bytes = b"", mode: int = 0o644) -> None:
    if safe.lstat(_admin(safe, rel)) is None:
        _write(safe, rel, data, mode=mode)


def _mkdirs(safe: SafeRoot, rel: bytes) -> None:
    parts: tuple[bytes, ...] = ()
    for part in rel.split(b"/"):
        parts = (*parts, part)
        safe.make_dir(parts, mode=0o755, uid=0, gid=0, mtime=0, context="dpkg database")
    safe.discard_dir_times()


def init_admindir(root: Path, *, arch: str, foreign_arches: Sequence[str] = ()) -> None:
    """Create an empty dpkg database, as a bootstrapper does before dpkg runs.

    ``status``, ``available``, ``diversions`` and ``statoverride`` are empty,
    ``arch`` lists the native then the foreign architectures, ``info/format``
    is ``1`` (the multiarch layout), ``triggers/Unincorp`` is empty.
    """
    with SafeRoot(root) as safe:
        for directory in (b"info", b"updates", b"triggers"):
            _mkdirs(safe, ADMINDIR + b"/" + directory)
        for name in (b"status", b"available", b"diversions", b"statoverride"):
            _ensure(safe, name)
        _write(safe, b"arch", "".join(f"{a}\n" for a in (arch, *foreign_arches)).encode())
        _ensure(safe, b"info/format", b"1\n")
        _ensure(safe, b"triggers/Unincorp")


def read_status(root: Path) -> list[list[tuple[str, str]]]:
    """The stanzas of ``/var/lib/dpkg/status`` as (field, value) lists."""
    with SafeRoot(root) as safe:
        data = _read(safe, b"status") or b""
    return _parse_stanzas(data.decode("utf-8", "surrogateescape"))


def _write_status(safe: SafeRoot, stanzas: list[list[tuple[str, str]]]) -> None:
    stanzas.sort(key=_key)
    text = "".join(format_status_stanza(s) + "\n" for s in stanzas)
    _write(safe, b"status", text.encode("utf-8", "surrogateescape"))


_Stanza = tuple[tuple[str, str], ...]
_Entry = tuple[tuple[str, str], _Stanza, str]  # (key, parsed stanza, its formatted text)


@dataclass(frozen=True)
class _StatusMemo:
    """The status file as last written by :func:`record_unpacked`, already parsed.

    Unpacking N packages rewrites the status file N times; re-parsing,
    re-keying and re-formatting all earlier stanzas each time made a
    bootstrap quadratic in the package count (2,000 packages: tens of
    seconds). The memo is used only while the file holds exactly ``data``;
    its entries are what parsing ``data`` would give, so the bytes written
    are the same as without it.
    """

    root: str
    data: bytes
    entries: tuple[_Entry, ...]


_status_memo: _StatusMemo | None = None  # one slot: the root being bootstrapped


def _status_entries(root: Path, data: bytes) -> list[_Entry]:
    memo = _status_memo
    if memo is not None and memo.root == str(root) and memo.data == data:
        return list(memo.entries)
    return [(_key(st), tuple(st), format_status_stanza(st)) for st in _parse_stanzas(data.decode())]


def _trigger_lines(package: DebPackage) -> list[tuple[str, str]]:
    member = package.control_file("triggers")
    if member is None:
        return []
    out = []
    for line in member.data.decode("utf-8", "surrogateescape").split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        command, _, name = line.partition(" ")
        out.append((command, name.strip()))
    return out


def _record_triggers(
    safe: SafeRoot, package: DebPackage, stanzas: Sequence[Sequence[tuple[str, str]]]
) -> None:
    who = package.installed_name
    directives = _trigger_lines(package)
    states = (
        {
            _key(s)[0]: dict((k.lower(), v) for k, v in s).get("status", "").split(" ")[-1]
            for s in stanzas
        }
        if any(command.startswith("activate") for command, _ in directives)
        else {}
    )
    for command, name in directives:
        if command.startswith("activate"):
            interested = []
            if not name.startswith("/"):
                data = _read(safe, b"triggers/" + name.encode()) or b""
                interested = [
                    line.split("/")[0].split(":")[0] for line in data.decode().split("\n") if line
                ]
            if any(
                states.get(p) in ("installed", "triggers-pending", "triggers-awaited")
                for p in interested
            ):
                raise DpkgDbError(
                    f"{who} activates trigger {name!r} of a configured package; "
                    "trigger processing is not modelled here",
                    hint="unpack every package before configuring any, as bootstrapping does",
                )
            continue
        if command not in ("interest", "interest-await", "interest-noawait"):
            raise ArchiveError(f"{package.path}: unknown trigger directive {command!r}")
        suffix = "/noawait" if command == "interest-noawait" else ""
        if name.startswith("/"):
            text = (_read(safe, b"triggers/File") or b"").decode("utf-8", "surrogateescape")
            lines = [x for x in text.split("\n") if x]
            entry = f"{name} {who}{suffix}"
            for index, line in enumerate(lines):
                path, _, owner = line.partition(" ")
                if path == name and owner.split("/")[0] == who:
                    lines[index] = entry
                    break
            else:
                lines.append(entry)
            _write(safe, b"triggers/File", "".join(f"{x}\n" for x in lines).encode())
        else:
            rel = b"triggers/" + name.encode()
            text = (_read(safe, rel) or b"").decode("utf-8", "surrogateescape")
            lines = [x for x in text.split("\n") if x and x.split("/")[0] != who]
            lines.append(who + suffix)
            _write(safe, rel, "".join(f"{x}\n" for x in lines).encode())


def record_unpacked(root: Path, result: UnpackResult) -> None:
    """Register an unpacked package in *root*'s dpkg database (``unpacked`` state)."""
    package = result.package
    who = package.installed_name
    with SafeRoot(root) as safe:
        if safe.resolves_to_dir([*ADMINDIR.split(b"/"), b"info"], context="dpkg database") is None:
            raise DpkgDbError(f"{root} has no dpkg database; call init_admindir first")
        _ensure(safe, b"lock", mode=0o640)
        _ensure(safe, b"lock-frontend", mode=0o640)
        _ensure(safe, b"triggers/Lock", mode=0o600)
        entries = [
            e
            for e in _status_entries(root, _read(safe, b"status") or b"")
            if e[0] != (package.name, package.architecture)
        ]
        conffiles = [
            f"{c.path} newconffile" + (" remove-on-upgrade" if c.remove_on_upgrade else "")
            for c in result.conffiles
        ]
        _record_triggers(safe, package, [e[1] for e in entries])
        for member in package.control_files:
            if "." in member.name:
                continue
            _write(
                safe,
                f"info/{who}.{member.name}".encode(),
                member.data,
                mode=member.mode,
                mtime=member.mtime,
                uid=member.uid,
                gid=member.gid,
            )
        listing = "".join(f"{p}\n" for p in result.paths).encode("utf-8", "surrogateescape")
        _write(safe, f"info/{who}.list".encode(), listing)
        if package.control_file("md5sums") is None:
            sums = "".join(f"{digest}  {path[1:]}\n" for path, digest in result.md5sums)
            _write(safe, f"info/{who}.md5sums".encode(), sums.encode("utf-8", "surrogateescape"))
        new = _status_fields(package, status="install ok unpacked", conffiles=conffiles)
        new_text = format_status_stanza(new)
        # What the next call will parse back (a value with a blank line would split).
        again = _parse_stanzas(new_text)
        new_entry = (
            (_key(again[0]), tuple(again[0]), format_status_stanza(again[0]))
            if len(again) == 1
            else None
        )
        rows = [(e[0], e[2], e) for e in entries] + [(_key(new), new_text, new_entry)]
        rows.sort(key=lambda row: row[0])  # stable, as _write_status sorts
        data = "".join(text + "\n" for _, text, _ in rows).encode("utf-8", "surrogateescape")
        _write(safe, b"status", data)
        global _status_memo
        kept = tuple(e for _, _, e in rows if e is not None)
        _status_memo = _StatusMemo(str(root), data, kept) if new_entry is not None else None


def mark_installed(root: Path, name: str, *, arch: str | None = None) -> None:
    """Finish a package's first configuration in the database.

    What ``dpkg --configure`` does besides running ``postinst`` for a package
    installed for the first time: each new conffile's ``.dpkg-new`` takes
    its place (an identical existing file is kept), its md5 replaces
    ``newconffile`` and the status becomes ``install ok installed``. A
    different file already in place would need a decision dpkg asks for; it
    is an error here.
    """
    with SafeRoot(root) as safe:
        stanzas = _parse_stanzas((_read(safe, b"status") or b"").decode("utf-8", "surrogateescape"))
        matches = [
            s for s in stanzas if _key(s)[0] == name and (arch is None or _key(s)[1] == arch)
        ]
        if len(matches) != 1:
            raise DpkgDbError(f"package {name!r} is not in the status file exactly once")
        stanza = matches[0]
        fields = dict(stanza)
        if fields.get("Status") != "install ok unpacked":
            raise DpkgDbError(f"package {name!r} is {fields.get('Status')!r}, not unpacked")
        new_lines = []
        for line in fields.get("Conffiles", "").split("\n"):
            if not line.strip():
                continue
            words = line.split(" ")[1:]
            path, digest, flags = words[0], words[1], words[2:]
            if digest == "newconffile" and "remove-on-upgrade" not in flags:
                digest = _install_conffile(safe, path)
            new_lines.append(" ".join([path, digest, *flags]))
        index = stanzas.index(stanza)
        updated = []
        for key, value in stanza:
            if key == "Status":
                value = "install ok installed"
            elif key == "Conffiles":
                value = "\n" + "\n".join(f" {line}" for line in new_lines)
            updated.append((key, value))
        stanzas[index] = updated
        _write_status(safe, stanzas)


def _md5_of(safe: SafeRoot, path: bytes) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
    with os.fdopen(fd, "rb") as handle:
        return hashlib.md5(handle.read()).hexdigest()


def _install_conffile(safe: SafeRoot, conffile: str) -> str:
    parts = tuple(conffile.encode("utf-8", "surrogateescape").strip(b"/").split(b"/"))
    parent, base = safe.parent(parts, context=f"conffile {conffile}")
    final = safe.child(parent, base)
    new = final + b".dpkg-new"
    if safe.lstat(new) is None:
        if safe.lstat(final) is None:
            raise TreeError(f"conffile {conffile} is missing (and has no .dpkg-new)")
        return _md5_of(safe, final)
    digest = _md5_of(safe, new)
    current = safe.lstat(final)
    if current is not None:
        if not stat.S_ISREG(current.st_mode) or _md5_of(safe, final) != digest:
            raise DpkgDbError(
                f"conffile {conffile} already exists and differs from the package's version"
            )
        os.unlink(new, dir_fd=safe.fd)
        return digest
    os.rename(new, final, src_dir_fd=safe.fd, dst_dir_fd=safe.fd)
    return digest
