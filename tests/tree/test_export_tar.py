"""Compressed exports are identical run after run and decompress to the canonical tar."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
from pathlib import Path

import pytest
import zstandard

from reprobuild.export import gzipblocks
from reprobuild.export.tar import ExportError, compressor_version, export_tarball
from reprobuild.tree import write_canonical_tar


@pytest.fixture
def canonical(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "data").write_bytes(os.urandom(200_000) + b"text " * 50_000)
    out = tmp_path / "tree.tar"
    with open(out, "wb") as handle:
        write_canonical_tar(root, handle, epoch=1_700_000_000)
    return out


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd", "xz"])
def test_two_runs_identical_and_lossless(canonical: Path, tmp_path: Path, compression: str) -> None:
    first = export_tarball(canonical, tmp_path / "a", compression)  # type: ignore[arg-type]
    second = export_tarball(canonical, tmp_path / "b", compression)  # type: ignore[arg-type]
    data = (tmp_path / "a").read_bytes()
    assert first == second == "sha256:" + hashlib.sha256(data).hexdigest()
    assert data == (tmp_path / "b").read_bytes()
    original = canonical.read_bytes()
    if compression == "gzip":
        assert (
            data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        )  # no name, mtime 0, OS unknown
        assert gzip.decompress(data) == original
    elif compression == "zstd":
        params = zstandard.get_frame_parameters(data)
        assert params.content_size == len(original) and params.has_checksum
        assert zstandard.ZstdDecompressor().decompress(data) == original
    elif compression == "xz":
        assert lzma.decompress(data) == original
        assert data[7] == lzma.CHECK_CRC64  # stream flags
    else:
        assert data == original
    assert not list(tmp_path.glob("*.partial"))


def test_zstd_version_is_reported() -> None:
    assert compressor_version("zstd").startswith("zstd 1.")


def test_unknown_compression(canonical: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError):
        export_tarball(canonical, tmp_path / "x", "lz4")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "size", [0, 1, gzipblocks.BLOCK - 1, gzipblocks.BLOCK, 3 * gzipblocks.BLOCK + 7]
)
def test_gzip_blocks_do_not_depend_on_the_thread_count(size: int) -> None:
    import subprocess
    import zlib

    data = (os.urandom(size // 3) + b"repeated text " * size)[:size]
    made = []
    for threads in (1, 2, 5):
        comp = gzipblocks.BlockDeflater(threads)
        body = b"".join(comp.compress(data[i : i + 300_000]) for i in range(0, size, 300_000))
        made.append(body + comp.flush())
    assert made[0] == made[1] == made[2]
    assert zlib.decompress(made[0], -zlib.MAX_WBITS) == data
    trailer = zlib.crc32(data).to_bytes(4, "little") + size.to_bytes(4, "little")
    member = gzipblocks.HEADER + made[0] + trailer
    assert gzip.decompress(member) == data
    assert subprocess.run(["gzip", "-dc"], input=member, capture_output=True).stdout == data
