"""pacman's local database (``var/lib/pacman/local``): what ``_alpm_local_db_write``
writes for each installed package, byte for byte (split from :mod:`.install`,
which unpacks the packages it registers)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from reprobuild.errors import ArchiveError
from reprobuild.tree import SafeRoot, member_parts

if TYPE_CHECKING:
    from reprobuild.archives.arch.install import AlpmUnpackResult, PkgDesc

__all__ = ["ALPM_DB_VERSION", "LOCAL_DB", "desc_text", "files_text", "write_local_db"]

LOCAL_DB: Final = "var/lib/pacman/local"
ALPM_DB_VERSION: Final = 9
_REASONS: Final = {"explicit": 0, "0": 0, "depend": 1, "dependency": 1, "1": 1}
_VALIDATION_ORDER: Final = ("none", "md5", "sha256", "pgp")


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
