"""Lockfiles do not depend on the mirror (issue 15).

The same recipe and snapshot locked against a mirror serving `Packages.xz`,
one serving only `Packages.gz` and one serving only the uncompressed
`Packages` give byte-identical lockfiles: each index is recorded by the name
and sha256 the signed Release gives its uncompressed form.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.errors import IntegrityError
from reprobuild.fetch import Fetcher, FetchPolicy
from reprobuild.locking import Sources

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "snapshots" / "demo" / "archive" / "debian"
TS = "20260711T101637Z"
UNCOMPRESSED_SHA256 = "515e692f2c4121c6fcec444ef100cc18f79a991910615f3a88c8b7becfc94d2f"
RECIPE = (
    'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; '
    'suites = [ "bookworm" ]; };\n'
    'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; '
    'packages = [ "netbase" ]; }; }; }\n'
)


def _mirror(tmp: Path, name: str, compression: str) -> str:
    """A mirror of the demo snapshot serving its index only with ``compression``."""
    snap = tmp / name / "debian" / TS
    index_dir = snap / "dists" / "bookworm" / "main" / "binary-amd64"
    index_dir.mkdir(parents=True)
    shutil.copy(DEMO / TS / "dists" / "bookworm" / "InRelease", snap / "dists" / "bookworm")
    (snap / "pool").symlink_to(DEMO / TS / "pool")
    text = lzma.decompress((DEMO / TS / "dists/bookworm/main/binary-amd64/Packages.xz").read_bytes())
    if compression == "xz":
        shutil.copy(DEMO / TS / "dists/bookworm/main/binary-amd64/Packages.xz", index_dir)
    elif compression == "gz":
        # Not the bytes Debian published: the Release vouches for its own .gz,
        # which this mirror then fails to serve correctly (tested below).
        (index_dir / "Packages.gz").write_bytes(gzip.compress(text, mtime=0))
    else:
        (index_dir / "Packages").write_bytes(text)
    return (tmp / name / "debian").as_uri() + "/"


def _lock(tmp: Path, name: str, mirror: str) -> bytes:
    work = tmp / f"recipe-{name}"
    work.mkdir()
    (work / "r.repro").write_text(RECIPE)
    fetcher = Fetcher(FetchPolicy(retries=0, backoff=0.01, timeout=2.0))
    api.lock(work / "r.repro", sources=Sources(mirrors={"debian": mirror}), fetcher=fetcher)
    return (work / "r.repro.lock").read_bytes()


def test_xz_and_plain_mirrors_give_byte_identical_lockfiles(tmp_path: Path) -> None:
    xz = _lock(tmp_path, "xz", _mirror(tmp_path, "m-xz", "xz"))
    plain = _lock(tmp_path, "plain", _mirror(tmp_path, "m-plain", "plain"))
    assert xz == plain
    assert f'"main/binary-amd64/Packages": "{UNCOMPRESSED_SHA256}"'.encode() in xz
    assert b"Packages.xz" not in xz


def test_a_compressed_index_the_release_does_not_vouch_for_is_refused(tmp_path: Path) -> None:
    """The .gz this mirror serves is not Debian's (other gzip bytes): refused, not
    accepted because it decompresses to the right text."""
    with pytest.raises(IntegrityError, match=r"Packages\.gz"):
        _lock(tmp_path, "gz", _mirror(tmp_path, "m-gz", "gz"))


def test_the_committed_lockfiles_record_uncompressed_indexes() -> None:
    for lock in [*ROOT.glob("recipes/*.lock"), *ROOT.glob("recipes/*/*.lock")]:
        text = lock.read_text()
        assert "Packages.xz" not in text and "Packages.gz" not in text, lock
