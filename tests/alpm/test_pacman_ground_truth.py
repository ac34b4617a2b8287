"""Our unpack + local database against the real ``pacman -U`` (ground truth).

pacman runs with ``--root``/``--dbpath`` on a fresh root, ``--noscriptlet``
and ``-dd`` (dependencies are absent), ``SigLevel = Never`` (so its
``%VALIDATION%`` is ``none``, which we are told to write too) and under
``faketime`` at our epoch when available (else ``%INSTALLDATE%`` is
normalised). Compared: every path, type, mode, owner, content, symlink
target, link count, capability and file mtime, and every database file byte
for byte. Excluded, as documented in :mod:`reprobuild.archives.arch.install`: directory
mtimes and the mtimes of ``desc``, ``files`` and ``ALPM_DB_VERSION`` (pacman
leaves the clock's), and ``%XDATA%`` when the installed pacman predates 6.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
from pathlib import Path

import pytest

from reprobuild.archives.arch.install import (
    install_order,
    read_alpm_package,
    unpack_package,
    write_local_db,
)

from .pkgs import CMATRIX, Node, make_package, need, pacman_install, pacman_version, snapshot

EPOCH = 1735689600


def _db_mtime_free(root: Path) -> list[str]:
    local = root / "var/lib/pacman/local"
    skipped = ["var/lib/pacman/local/ALPM_DB_VERSION"]
    for entry in local.iterdir():
        if entry.is_dir():
            skipped += [f"var/lib/pacman/local/{entry.name}/{n}" for n in ("desc", "files")]
    return skipped


def _normalise_installdate(snap: dict[str, tuple[object, ...]]) -> None:
    for rel, value in snap.items():
        if rel.endswith("/desc") and isinstance(value[4], bytes):
            body = re.sub(rb"%INSTALLDATE%\n\d+\n", b"%INSTALLDATE%\nN\n", value[4])
            snap[rel] = (*value[:4], body, *value[5:])


def _compare(
    packages: list[Path], tmp_path: Path
) -> tuple[dict[str, tuple[object, ...]], list[str]]:
    need("pacman")
    theirs, ours = tmp_path / "pacman", tmp_path / "ours"
    for root in (theirs, ours):
        root.mkdir()
        root.chmod(0o755)
    # with -dd pacman does not sort by dependencies: hand it our order
    ordered = install_order([read_alpm_package(p) for p in packages])
    pacman_install(theirs, [p.path for p in ordered], tmp_path / "work")
    results = [unpack_package(p.path, ours) for p in ordered]
    write_local_db(
        ours,
        results,
        reasons=None,
        epoch=EPOCH,
        validation="none",
        xdata=pacman_version() >= (6, 1),
    )
    skip = _db_mtime_free(theirs)
    a, b = snapshot(theirs, skip_mtime=skip), snapshot(ours, skip_mtime=skip)
    if shutil.which("faketime") is None:
        _normalise_installdate(a)
        _normalise_installdate(b)
    assert sorted(a) == sorted(b)
    for rel in a:
        assert a[rel] == b[rel], rel
    return b, [w for r in results for w in r.warnings]


def test_cmatrix_matches_pacman(tmp_path: Path) -> None:
    if not CMATRIX.is_file():
        pytest.skip(f"genuine Arch package {CMATRIX} is absent")
    snap, warnings = _compare([CMATRIX], tmp_path)
    assert warnings == []
    assert "usr/bin/cmatrix" in snap
    desc = snap["var/lib/pacman/local/cmatrix-2.0-3/desc"][4]
    assert isinstance(desc, bytes) and desc.startswith(b"%NAME%\ncmatrix\n\n%VERSION%\n2.0-3\n\n")
    assert b"%VALIDATION%\nnone\n" in desc
    assert snap["var/lib/pacman/local/cmatrix-2.0-3/mtree"][1] == 0o644


def _capability() -> bytes:
    # VFS_CAP_REVISION_2 with the effective flag: cap_net_raw (13) permitted
    return struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


def test_synthetic_set_matches_pacman(tmp_path: Path) -> None:
    need("bsdtar")
    out = tmp_path / "pkgs"
    out.mkdir()
    base = make_package(
        out,
        "base-dirs",
        nodes={
            "etc": Node("dir", mode=0o755),
            "usr": Node("dir", mode=0o755),
            "usr/bin": Node("dir", mode=0o755),
            "srv": Node("dir", mode=0o750, gid=33),
        },
    )
    tool = make_package(
        out,
        "tool",
        "2:1.5-3",
        nodes={
            "etc": Node("dir", mode=0o755),
            "etc/tool.conf": Node(data=b"setting = 1\n"),
            "etc/tool.d": Node("dir", mode=0o700),
            "etc/tool.d/extra.conf": Node(data=b"x\n", mode=0o600),
            "usr": Node("dir", mode=0o755),
            "usr/bin": Node("dir", mode=0o755),
            "usr/bin/tool": Node(data=b"#!/bin/sh\necho tool\n", mode=0o4755),
            "usr/bin/tool-alias": Node("hardlink", target="usr/bin/tool"),
            "usr/bin/tl": Node("symlink", target="tool"),
            "usr/bin/ping-like": Node(data=b"\x7fELF", mode=0o755),
            "usr/share": Node("dir", mode=0o755),
            "usr/share/tool": Node("dir", mode=0o2775, gid=50),
            "usr/share/tool/data name with spaces": Node(data=b"d" * 5000),
            "srv": Node("dir", mode=0o755),
        },
        pkginfo=[
            ("backup", "etc/tool.conf"),
            ("backup", "etc/tool.d/extra.conf"),
            ("depend", "base-dirs"),
            ("depend", "libfoo>=1:2.0-1"),
            ("optdepend", "bash: for the completion"),
            ("provides", "tool-bin=1.5"),
            ("conflict", "old-tool"),
            ("license", "MIT"),
            ("license", "GPL-2.0-only"),
            ("group", "tools"),
            ("replaces", "ancient-tool<1"),
        ],
        install="post_install() {\n  echo installed $1\n}\n",
        setup=lambda stage: _set_capability(stage / "usr/bin/ping-like"),
    )
    snap, warnings = _compare([tool, base], tmp_path)
    # srv: the first package (base-dirs, a dependency) made it 0750; tool's 0755 is ignored
    assert snap["srv"][1] == 0o750
    assert any("directory permissions differ on /srv/" in w for w in warnings)
    assert snap["usr/bin/tool"][1] == 0o4755
    db = "var/lib/pacman/local/tool-2:1.5-3"
    assert snap[f"{db}/install"][4] == b"post_install() {\n  echo installed $1\n}\n"
    files = snap[f"{db}/files"][4]
    assert isinstance(files, bytes) and b"%BACKUP%\netc/tool.conf\t" in files
    desc = snap[f"{db}/desc"][4]
    assert isinstance(desc, bytes) and b"%DEPENDS%\nbase-dirs\nlibfoo>=1:2.0-1\n\n" in desc


def _set_capability(path: Path) -> None:
    # on a file system without xattrs the comparison still holds
    with contextlib.suppress(OSError):
        os.setxattr(path, "security.capability", _capability())
