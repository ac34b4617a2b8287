"""Hostile tarballs: nothing may be written outside the root."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from reprobuild.errors import ArchiveError
from reprobuild.tree import TreeError, UnsafePathError, read_canonical_tar


def _tar(*entries: tuple[str, bytes, str] | tuple[str, bytes, str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            name, kind, link = entry[:3]
            data = entry[3] if len(entry) == 4 else b""
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, link, 0o755
            # Owned by whoever runs the test: path safety must not need root to be checked.
            info.uid, info.gid = os.getuid(), os.getgid()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    buf.seek(0)
    return buf


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory outside the root that must stay untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(b"original\n")
    return outside


def _untouched(victim: Path) -> None:
    assert sorted(p.name for p in victim.iterdir()) == ["passwd"]
    assert (victim / "passwd").read_bytes() == b"original\n"


@pytest.mark.parametrize("name", ["../outside/passwd", "./../x", "a/../../x", "/etc/passwd", "/x"])
def test_dotdot_and_absolute_names_are_refused(tmp_path: Path, victim: Path, name: str) -> None:
    with pytest.raises(UnsafePathError, match=r"absolute|'\.\.'"):
        read_canonical_tar(_tar(("./a/", tarfile.DIRTYPE, ""), (name, tarfile.REGTYPE, "", b"evil")), tmp_path / "root")
    _untouched(victim)


def test_relative_symlink_escape_then_write_is_refused(tmp_path: Path, victim: Path) -> None:
    stream = _tar(("./link", tarfile.SYMTYPE, "../outside"), ("./link/passwd", tarfile.REGTYPE, "", b"evil"))
    with pytest.raises(UnsafePathError, match="outside the tree"):
        read_canonical_tar(stream, tmp_path / "root")
    _untouched(victim)


def test_symlink_chain_escape_is_refused(tmp_path: Path, victim: Path) -> None:
    stream = _tar(
        ("./d/", tarfile.DIRTYPE, ""),
        ("./d/a", tarfile.SYMTYPE, "b"),
        ("./d/b", tarfile.SYMTYPE, "../c"),
        ("./c", tarfile.SYMTYPE, "d/../../outside"),
        ("./d/a/passwd", tarfile.REGTYPE, "", b"evil"),
    )
    with pytest.raises(UnsafePathError):
        read_canonical_tar(stream, tmp_path / "root")
    _untouched(victim)


def test_absolute_symlink_is_resolved_inside_the_root(tmp_path: Path, victim: Path) -> None:
    """Like a chroot: /outside means <root>/outside, never the host's."""
    root = tmp_path / "root"
    stream = _tar(
        ("./outside/", tarfile.DIRTYPE, ""),
        ("./etc", tarfile.SYMTYPE, str(victim)),  # absolute, pointing at the real victim path
        ("./abs", tarfile.SYMTYPE, "/outside"),
        ("./abs/passwd", tarfile.REGTYPE, "", b"inside"),
    )
    read_canonical_tar(stream, root)
    assert (root / "outside" / "passwd").read_bytes() == b"inside"
    _untouched(victim)


def test_absolute_symlink_to_missing_host_path_cannot_be_written_through(tmp_path: Path, victim: Path) -> None:
    stream = _tar(("./etc", tarfile.SYMTYPE, str(victim)), ("./etc/passwd", tarfile.REGTYPE, "", b"evil"))
    with pytest.raises(TreeError, match="does not exist"):
        read_canonical_tar(stream, tmp_path / "root")
    _untouched(victim)


def test_hard_link_outside_is_refused(tmp_path: Path, victim: Path) -> None:
    for link in (str(victim / "passwd"), "../outside/passwd", "./not-a-member"):
        with pytest.raises(UnsafePathError):
            read_canonical_tar(_tar(("./evil", tarfile.LNKTYPE, link)), tmp_path / f"root{hash(link)}")
    _untouched(victim)


def test_hard_link_through_symlinked_dir_is_refused(tmp_path: Path, victim: Path) -> None:
    stream = _tar(("./link", tarfile.SYMTYPE, "../outside"), ("./evil", tarfile.LNKTYPE, "./link/passwd"))
    with pytest.raises(UnsafePathError):
        read_canonical_tar(stream, tmp_path / "root")
    _untouched(victim)


def test_existing_symlink_is_replaced_not_followed(tmp_path: Path, victim: Path) -> None:
    root = tmp_path / "root"
    stream = _tar(("./x", tarfile.SYMTYPE, str(victim / "passwd")), ("./x", tarfile.REGTYPE, "", b"new"))
    read_canonical_tar(stream, root)
    assert (root / "x").read_bytes() == b"new" and not (root / "x").is_symlink()
    _untouched(victim)


def test_truncated_stream_is_an_error(tmp_path: Path) -> None:
    data = _tar(("./f", tarfile.REGTYPE, "", b"x" * 2000)).getvalue()[:1024]
    with pytest.raises(ArchiveError):
        read_canonical_tar(io.BytesIO(data), tmp_path / "root")
