"""Content objects: streaming put, verified reads, atomic export."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pytest

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.store import ContentMissing, Store, default_store_path


def _write_random(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def test_put_bytes_round_trip(store: Store) -> None:
    blob = store.put_bytes(b"hello")
    assert blob.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert blob.size == 5
    assert store.has(blob.sha256)
    with store.open(blob.sha256) as f:
        assert f.read() == b"hello"
    assert store.read_bytes(blob.sha256) == b"hello"
    assert store.path_of(blob.sha256).read_bytes() == b"hello"
    # git-lfs layout, read-only
    p = store.path_of(blob.sha256)
    assert p == store.path / "lfs" / "objects" / blob.sha256[:2] / blob.sha256[2:4] / blob.sha256
    assert not os.access(p, os.W_OK) or os.geteuid() == 0
    assert p.stat().st_mode & 0o777 == 0o444


def test_empty_and_idempotent(store: Store) -> None:
    a = store.put_bytes(b"")
    b = store.put_bytes(b"")
    assert a == b and a.size == 0
    assert store.read_bytes(a.sha256) == b""
    assert list((store.path / "lfs" / "tmp").iterdir()) == []


def test_put_stream_read_only_object(store: Store) -> None:
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self._f = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._f.read(min(n, 7))  # short reads

    data = os.urandom(100_000)
    blob = store.put_stream(ReadOnly(data))  # type: ignore[arg-type]
    assert store.read_bytes(blob.sha256) == data


def test_expected_sha256_mismatch_leaves_nothing(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"actual bytes")
    wrong = hashlib.sha256(b"other").hexdigest()
    actual = hashlib.sha256(b"actual bytes").hexdigest()
    with pytest.raises(IntegrityError) as exc:
        store.put_file(f, expected_sha256=wrong)
    assert wrong in exc.value.message and actual in exc.value.message
    assert not store.has(actual) and not store.has(wrong)
    assert list((store.path / "lfs" / "tmp").iterdir()) == []


def test_truncated_download_rejected(store: Store) -> None:
    full = os.urandom(50_000)
    digest = hashlib.sha256(full).hexdigest()
    with pytest.raises(IntegrityError, match="30000 bytes, expected 50000"):
        store.put_stream(io.BytesIO(full[:30_000]), expected_sha256=digest, expected_size=50_000)
    with pytest.raises(IntegrityError, match="larger"):
        store.put_stream(io.BytesIO(full + b"x"), expected_sha256=digest, expected_size=50_000)
    assert not store.has(digest)
    assert (
        store.put_stream(io.BytesIO(full), expected_sha256=digest, expected_size=50_000).size
        == 50_000
    )


def test_open_detects_tampering(store: Store) -> None:
    blob = store.put_bytes(b"A" * 100_000)
    p = store.path_of(blob.sha256)
    os.chmod(p, 0o644)
    p.write_bytes(b"A" * 99_999 + b"B")
    f = store.open(blob.sha256)
    with pytest.raises(IntegrityError, match=blob.sha256):
        f.read()
    f.close()
    with pytest.raises(IntegrityError):
        store.export(blob.sha256, store.path.parent / "out.bin")
    assert not (store.path.parent / "out.bin").exists()
    assert [x.name for x in store.path.parent.iterdir() if x.name.startswith(".out")] == []


def test_missing_content(store: Store, tmp_path: Path) -> None:
    sha = "0" * 64
    assert not store.has(sha)
    with pytest.raises(ContentMissing):
        store.open(sha)
    with pytest.raises(ContentMissing):
        store.path_of(sha)
    with pytest.raises(StoreError):
        store.has("not-a-hash/../../etc")


def test_export_atomic_and_writable(store: Store, tmp_path: Path) -> None:
    blob = store.put_bytes(b"image bytes")
    dest = tmp_path / "out" / "img.raw"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    assert store.export(blob.sha256, dest) == blob
    assert dest.read_bytes() == b"image bytes"
    assert dest.stat().st_mode & 0o200
    assert sorted(p.name for p in dest.parent.iterdir()) == ["img.raw"]


def test_default_store_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REPROBUILD_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_store_path() == tmp_path / "data" / "reprobuild" / "store"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / ".local" / "share" / "reprobuild" / "store"
    monkeypatch.setenv("REPROBUILD_STORE", str(tmp_path / "s"))
    assert default_store_path() == tmp_path / "s"
    with Store.open() as s:
        assert s.path == tmp_path / "s"


def test_open_refuses_non_store(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreError, match="not a reprobuild store"):
        Store.open(tmp_path / "plain")
    with pytest.raises(StoreError, match="no store"):
        Store.open(tmp_path / "absent", create=False)


def test_200mb_streams_in_bounded_memory(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    size = 200 << 20
    digest = _write_random(src, size)
    tracemalloc.start()
    try:
        blob = store.put_file(src, expected_sha256=digest, expected_size=size)
        _, peak_put = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        h = hashlib.sha256()
        with store.open(blob.sha256) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _, peak_read = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.export(blob.sha256, tmp_path / "copy.bin")
        _, peak_export = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert blob.size == size and h.hexdigest() == digest
    assert (tmp_path / "copy.bin").stat().st_size == size
    limit = 16 << 20
    assert peak_put < limit, peak_put
    assert peak_read < limit, peak_read
    assert peak_export < limit, peak_export


def test_layout_is_readable_by_dulwich_lfs_store(store: Store) -> None:
    """Content sits where git-lfs (and dulwich.lfs.LFSStore) look in a bare repo."""
    from dulwich.lfs import LFSStore

    blob = store.put_bytes(b"lfs compatible")
    with LFSStore.from_repo(store.repo).open_object(blob.sha256) as f:
        assert f.read() == b"lfs compatible"
