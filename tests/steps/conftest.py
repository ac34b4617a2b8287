"""Real bookworm packages from the shared mirror, and helpers to build bad ones."""

from __future__ import annotations

import io
import lzma
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
POOL = (REPO / ".." / "shared" / "mirrors" / "debian" / "archive" / "debian" / "20260711T101637Z" / "pool").resolve()


@pytest.fixture(scope="session")
def pool_debs() -> dict[str, Path]:
    """Package name -> .deb path of the 101 real packages (skips when absent)."""
    if not POOL.is_dir():
        pytest.skip(f"shared Debian mirror {POOL} is absent (expected beside the repository)")
    return {p.name.split("_")[0]: p for p in sorted(POOL.rglob("*.deb"))}


def ar_archive(members: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
        assert len(header) == 60
        out += header + data + (b"\n" if len(data) % 2 else b"")
    return out


def tar_bytes(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for entry in entries:
            if isinstance(entry, tuple):
                info, data = entry
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(entry)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, linkname: str = "", mtime: int = 1_600_000_000) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.mtime = mtime
    info.uname = info.gname = "root"
    return info


CONTROL = b"Package: evil\nVersion: 1.0\nArchitecture: all\nMaintainer: X <x@example.org>\nDescription: test\n"


def make_deb(tmp_path: Path, data_entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], *, control: bytes = CONTROL, extra_control: dict[str, bytes] | None = None, name: str = "evil.deb") -> Path:
    ctrl_entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = [member("./", tarfile.DIRTYPE, mode=0o755), (member("./control"), control)]
    for cname, data in (extra_control or {}).items():
        ctrl_entries.append((member(f"./{cname}", mode=0o755 if cname.endswith(("inst", "rm")) else 0o644), data))
    deb = ar_archive([
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", lzma.compress(tar_bytes(ctrl_entries))),
        ("data.tar.xz", lzma.compress(tar_bytes(data_entries))),
    ])
    path = tmp_path / name
    path.write_bytes(deb)
    return path


@pytest.fixture
def deb_factory(tmp_path: Path) -> Callable[..., Path]:
    def build(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]], **kwargs: object) -> Path:
        return make_deb(tmp_path, entries, **kwargs)  # type: ignore[arg-type]
    return build


def snapshot_tree(root: Path, *, mtimes_for: Callable[[str], bool] = lambda rel: True) -> dict[str, tuple[object, ...]]:
    """path -> (type, mode, uid, gid, content/target/rdev, mtime or None), symlinks not followed."""
    import hashlib
    import stat
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            fmt = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    detail: object = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(full)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                detail = st.st_rdev
            else:
                detail = None
            mtime = st.st_mtime_ns // 10**9 if (not stat.S_ISDIR(st.st_mode) and mtimes_for(rel)) else None
            out[rel] = (fmt, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, detail, mtime)
    return out
