"""Hostile packages for the tests, made with the real tools where they can make them.

* :func:`deb_from_tree` stages a directory and runs ``dpkg-deb --build``: a
  well-formed package (maintainer scripts, setuid files) exactly as Debian
  builds one.
* :func:`deb_from_members` writes data.tar members verbatim with
  :mod:`tarfile` (dpkg-deb cannot be made to emit ``..``, duplicates or
  devices) and assembles the package with ``ar``.
* :func:`zeros_member` is a decompression bomb: one member of N zero bytes,
  streamed through zstd (256 MiB become some 8 KiB) without holding it in
  memory; with ``truncate`` only the header is written (a member that
  *claims* a terabyte).
* :func:`alpm_from_members` is the same for pacman packages (``.PKGINFO``
  first, as makepkg writes it), zstd-compressed.
* :func:`signed_mirror` puts crafted debs beside the demo snapshot's genuine
  ones in a new mirror whose index is signed with a throwaway key
  (:mod:`tests.support.debmirror`), so the real lock/fetch/verify path runs.
"""

from __future__ import annotations

import io
import lzma
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import zstandard

from reprobuild.archives.debian.unpack import read_deb
from tests.support.debmirror import (
    SHARED_TIMESTAMP,
    Deb,
    DebMirror,
    MirrorUnavailable,
    shared_release_date,
    sign_release,
    write_index,
    write_release,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO_SNAPSHOT = ROOT / "snapshots" / "demo" / "archive" / "debian" / SHARED_TIMESTAMP
MTIME = 1_700_000_000
Member = tuple[tarfile.TarInfo, bytes | None]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MirrorUnavailable(f"{name} is not installed")
    return found


def member(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    mode: int = 0o644,
    linkname: str = "",
    size: int | None = None,
    device: tuple[int, int] = (0, 0),
) -> tarfile.TarInfo:
    """A tar header as dpkg-deb writes them (root:root, fixed mtime)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.mtime = MTIME
    info.uname = info.gname = "root"
    info.devmajor, info.devminor = device
    if size is not None:
        info.size = size
    return info


def tar_bytes(members: Sequence[Member], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def zeros_member(name: str, size: int, *, truncate: bool = False, prefix: bytes = b"") -> bytes:
    """A zstd-compressed tar whose member *name* holds *size* zero bytes.

    *prefix* (uncompressed tar members) comes first. With *truncate* the
    data stops after the header: the member only claims the size.
    """
    info = member(name, size=size)
    info.uname = info.gname = ""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as z:
        z.write(prefix)
        z.write(info.tobuf(format=tarfile.GNU_FORMAT))
        if not truncate:
            chunk = bytes(1 << 20)
            left = size
            while left:
                n = min(left, len(chunk))
                z.write(chunk[:n])
                left -= n
            z.write(bytes(-size % 512) + bytes(1024))
    return out.getvalue()


def _control(name: str, version: str, extra: str) -> bytes:
    text = (
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Reprobuild Tests <tests@reprobuild.invalid>\n"
        f"{extra}Description: crafted by tests/support/crafted.py\n"
    )
    return text.encode()


def deb_from_tree(
    dest: Path,
    name: str,
    *,
    version: str = "1.0",
    files: Mapping[str, tuple[bytes, int]] | None = None,
    scripts: Mapping[str, str] | None = None,
    control_extra: str = "",
    compression: str = "xz",
) -> Path:
    """``dpkg-deb --build`` of a staged tree: ``files`` maps paths to (data, mode)."""
    stage = dest / f"stage-{name}"
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "DEBIAN").mkdir(parents=True)
    for path, (data, mode) in (files or {}).items():
        target = stage / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
    (stage / "DEBIAN" / "control").write_bytes(_control(name, version, control_extra))
    for script, text in (scripts or {}).items():
        (stage / "DEBIAN" / script).write_text(text)
        (stage / "DEBIAN" / script).chmod(0o755)
    out = dest / f"{name}_{version}_all.deb"
    subprocess.run(
        [
            _tool("dpkg-deb"),
            "--root-owner-group",
            f"-Z{compression}",
            "--build",
            str(stage),
            str(out),
        ],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": str(MTIME)},
    )
    shutil.rmtree(stage)
    return out


def deb_from_members(
    dest: Path,
    name: str,
    members: Sequence[Member] = (),
    *,
    version: str = "1.0",
    control_extra: str = "",
    data: tuple[str, bytes] | None = None,
) -> Path:
    """A .deb whose data.tar holds *members* verbatim (xz), or *data* as
    (suffix, already compressed bytes); assembled with ``ar`` like dpkg-deb."""
    work = dest / f"ar-{name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "debian-binary").write_bytes(b"2.0\n")
    control = tar_bytes(
        [
            (member("./", tarfile.DIRTYPE, mode=0o755), None),
            (member("./control"), _control(name, version, control_extra)),
        ]
    )
    (work / "control.tar.xz").write_bytes(lzma.compress(control))
    suffix, payload = data if data is not None else (".xz", lzma.compress(tar_bytes(members)))
    (work / f"data.tar{suffix}").write_bytes(payload)
    out = dest / f"{name}_{version}_all.deb"
    out.unlink(missing_ok=True)
    subprocess.run(
        [_tool("ar"), "rcD", str(out), "debian-binary", "control.tar.xz", f"data.tar{suffix}"],
        cwd=work,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(work)
    return out


def raw_members(members: Sequence[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """Tar members without the end-of-archive blocks (to be followed by more)."""
    out = b""
    for info, data in members:
        if data is not None:
            info.size = len(data)
        out += info.tobuf(format=fmt) + (data or b"") + bytes(-len(data or b"") % 512)
    return out


def pkginfo(name: str, size: int | None = None) -> bytes:
    """makepkg's first member, ``.PKGINFO`` (``size`` is the installed size in bytes)."""
    text = f"pkgname = {name}\npkgver = 1.0-1\narch = x86_64\n"
    if size is not None:
        text += f"size = {size}\n"
    return raw_members([(member(".PKGINFO"), text.encode())])


def alpm_from_members(
    dest: Path,
    name: str,
    members: Sequence[Member] = (),
    *,
    size: int | None = None,
    bomb: tuple[str, int, bool] | None = None,
) -> Path:
    """A zstd pacman package: ``.PKGINFO`` then *members*, or with *bomb*
    (member name, bytes, truncate) a :func:`zeros_member` after .PKGINFO."""
    path = dest / f"{name}-1.0-1-x86_64.pkg.tar.zst"
    head = pkginfo(name, size)
    if bomb is not None:
        path.write_bytes(zeros_member(bomb[0], bomb[1], truncate=bomb[2], prefix=head))
    else:
        body = head + raw_members(members) + bytes(1024)
        path.write_bytes(zstandard.ZstdCompressor().compress(body))
    return path


def signed_mirror(
    dest: Path,
    debs: Sequence[Path],
    *,
    base: Path = DEMO_SNAPSHOT,
    arch: str = "amd64",
    suite: str = "bookworm",
) -> DebMirror:
    """The demo snapshot's packages (for ``arch="amd64"``; none for another
    architecture) plus *debs*, indexed for *arch* as *suite* and signed anew."""
    pool: dict[str, Deb] = {}
    own = sorted(base.joinpath("pool").rglob("*.deb")) if arch == "amd64" else []
    for path in [*own, *debs]:
        deb = read_deb(path)
        source = (deb.get("Source") or deb.name).split(" ", 1)[0]
        pool[deb.name] = Deb(
            path, deb.name, deb.version, deb.architecture, source, deb.fields, "fetched"
        )
    snapshot = dest / "archive" / "debian" / SHARED_TIMESTAMP
    write_index(snapshot, suite, pool, arch)
    release = write_release(snapshot, suite, shared_release_date(base, "bookworm"), arch)
    keyring = dest / "keyring.gpg"
    fingerprint = sign_release(release, keyring)
    return DebMirror(dest, SHARED_TIMESTAMP, suite, keyring, fingerprint, pool)
