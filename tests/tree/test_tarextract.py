"""extract_all on a Python without PEP 706 filters (Debian 12's 3.11.2) refuses
what filter="data" refuses, and extracts the rest."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from reprobuild.errors import ArchiveError
from reprobuild.tarextract import extract_all


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for info, data in members:
            info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _file(name: str, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, b"x"


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


@pytest.fixture(params=["filter", "no-filter"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no-filter":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return str(request.param)


def test_plain_members_are_extracted(python: str, tmp_path: Path) -> None:
    data = _tar(_file("a/b"), _file("tool", 0o4755), _link("a/c", "b"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as t:
        extract_all(t, tmp_path)
    assert (tmp_path / "a" / "b").read_bytes() == b"x"
    assert (tmp_path / "a" / "c").resolve() == (tmp_path / "a" / "b").resolve()
    assert not (tmp_path / "tool").stat().st_mode & 0o4000  # no setuid


@pytest.mark.parametrize(
    "member",
    [
        _file("../escape"),
        _link("out", "../../etc/passwd"),
        _link("out", "/etc/passwd"),
        _link("hard", "../x", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "symlink-up", "symlink-absolute", "hardlink-up"],
)
def test_what_leaves_the_destination_is_refused(
    python: str, member: tuple[tarfile.TarInfo, bytes], tmp_path: Path
) -> None:
    dest = tmp_path / "d"
    dest.mkdir()
    with tarfile.open(fileobj=io.BytesIO(_tar(member))) as t, pytest.raises(
        (ArchiveError, tarfile.FilterError if hasattr(tarfile, "FilterError") else ArchiveError)
    ):
        extract_all(t, dest)
    assert not (tmp_path / "escape").exists()
