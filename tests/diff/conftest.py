"""Builders of real artefacts for the ``reprobuild diff`` tests."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reprobuild.tree import write_canonical_tar

EPOCH = 1_700_000_000


def need(*tools: str) -> None:
    """Skip the test, naming the Debian package, when a tool is missing."""
    packages = {
        "xorriso": "xorriso",
        "debugfs": "e2fsprogs",
        "mkfs.ext4": "e2fsprogs",
        "sfdisk": "fdisk",
        "gcc": "gcc",
        "objcopy": "binutils",
        "dpkg-deb": "dpkg",
        "diffoscope": "diffoscope-minimal",
        "mksquashfs": "squashfs-tools",
        "unsquashfs": "squashfs-tools",
    }
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool in tools:
        if shutil.which(tool, path=path) is None:
            pytest.skip(f"{tool} is not installed (apt-get install {packages.get(tool, tool)})")


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("building trees with owners needs root")


@dataclass
class Member:
    """One tar member to write (a file unless *target* or *kind* says otherwise)."""

    name: str
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = EPOCH
    target: str = ""
    kind: bytes = tarfile.REGTYPE


def write_tar(path: Path, members: Iterable[Member], *, compression: str = "") -> Path:
    """A tar with exactly the metadata given (mode ``w:gz`` etc. by *compression*)."""
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.mode, info.uid, info.gid, info.mtime = m.mode, m.uid, m.gid, m.mtime
            if m.target:
                info.type, info.linkname = tarfile.SYMTYPE, m.target
                tar.addfile(info)
            elif m.kind == tarfile.DIRTYPE:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
    return path


def make_tree(root: Path, files: dict[str, bytes | str], *, epoch: int = EPOCH) -> Path:
    """A directory tree of *files* (a str value is a symlink target), times set to *epoch*."""
    root.mkdir(parents=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            os.symlink(content, path)
        else:
            path.write_bytes(content)
            if content.startswith(b"\x7fELF") or name.startswith("usr/bin/"):
                path.chmod(0o755)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    return root


def canonical_tar(root: Path, out: Path, *, epoch: int = EPOCH) -> Path:
    with open(out, "wb") as handle:
        write_canonical_tar(root, handle, epoch=epoch)
    return out
