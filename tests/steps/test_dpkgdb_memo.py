"""The parsed-status memo of record_unpacked changes speed, never bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprobuild.archives.debian import dpkgdb
from reprobuild.archives.debian.dpkgdb import init_admindir, read_status, record_unpacked
from reprobuild.archives.debian.unpack import UnpackResult, setup_merged_usr, unpack_data

NAMES = ("base-files", "base-passwd", "libc6", "debconf", "dpkg", "tzdata", "mawk", "bash")


def _unpacked(root: Path, pool_debs: dict[str, Path]) -> list[UnpackResult]:
    root.mkdir()
    setup_merged_usr(root, "amd64")
    init_admindir(root, arch="amd64")
    return [unpack_data(pool_debs[n], root) for n in NAMES]


def _status(root: Path) -> bytes:
    return (root / "var/lib/dpkg/status").read_bytes()


def test_memo_writes_the_same_status_as_parsing_each_time(
    tmp_path: Path, pool_debs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    memo, fresh = tmp_path / "memo", tmp_path / "fresh"
    results = _unpacked(memo, pool_debs)
    for r in results:
        record_unpacked(memo, r)
    assert dpkgdb._status_memo is not None and dpkgdb._status_memo.root == str(memo)

    results = _unpacked(fresh, pool_debs)
    for r in results:
        monkeypatch.setattr(dpkgdb, "_status_memo", None)  # parse the file every time
        record_unpacked(fresh, r)
    assert _status(memo) == _status(fresh)
    assert [dict(s)["Package"] for s in read_status(memo)] == sorted(NAMES)


def test_memo_is_not_used_once_the_file_changed(tmp_path: Path, pool_debs: dict[str, Path]) -> None:
    root = tmp_path / "root"
    results = _unpacked(root, pool_debs)
    for r in results[:-1]:
        record_unpacked(root, r)
    # Someone else (dpkg in the sandbox, say) rewrites the file meanwhile.
    path = root / "var/lib/dpkg/status"
    path.write_bytes(
        path.read_bytes()
        + b"Package: zz-external\nStatus: install ok installed\nArchitecture: all\n"
        + b"Version: 1\n\n"
    )
    record_unpacked(root, results[-1])
    text = _status(root)
    assert b"Package: zz-external\n" in text  # a stale memo would have dropped it
    assert b"Package: bash\n" in text and text.count(b"Package: ") == len(NAMES) + 1
