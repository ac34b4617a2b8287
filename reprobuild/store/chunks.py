"""Chunk files and manifests: ``lfs/chunks/ab/cd/<sha256>``, ``lfs/manifests/ab/cd/<sha256>``.

A chunk file is one content-defined chunk, named by the sha256 of its bytes
and stored once whatever refers to it: ``b"Z"`` + a zstd frame, or ``b"R"``
+ the raw bytes when zstd would not shrink it (already compressed data).
A manifest file (see manifest.py) is named by the sha256 of the whole
content it describes.

Durability: chunk files are written without an fsync each (a first ingest
makes thousands); :meth:`ChunkStore.sync` makes the new ones durable in one
go before the manifest that reaches them is published, so the store's rule
"nothing is referenced before it is durably in place" holds.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.store._fs import atomic_write_bytes, fsync_dir, temp_file
from reprobuild.store.manifest import CDC_MAX, ChunkRef, Manifest
from reprobuild.store.records import check_sha256

ZSTD_CHUNK_LEVEL = 3
_SYNCFS_OVER = 64  # more new chunks than this: one syncfs instead of an fsync each


def git_blob_id(data: bytes | memoryview) -> str:
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def _syncfs(path: Path) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (OSError, AttributeError):
        return False
    try:
        return bool(libc.syncfs(fd) == 0)
    except AttributeError:
        return False
    finally:
        os.close(fd)


class ChunkStore:
    """The ``chunks/`` and ``manifests/`` directories of ``lfs/``."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.chunks = root / "chunks"
        self.manifests = root / "manifests"
        self.tmp = tmp
        self._unsynced: list[Path] = []
        self._lock = threading.Lock()  # steps run on several threads
        self._local = threading.local()  # zstd (de)compressors are not thread-safe

    def _codec(self) -> Any:
        codec = getattr(self._local, "codec", None)
        if codec is None:
            import zstandard

            codec = self._local.codec = (
                zstandard.ZstdCompressor(level=ZSTD_CHUNK_LEVEL),
                zstandard.ZstdDecompressor(),
                zstandard.ZstdError,
            )
        return codec

    def create(self) -> None:
        self.chunks.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- chunks

    def chunk_path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.chunks / sha256[:2] / sha256[2:4] / sha256

    def has_chunk(self, sha256: str) -> bool:
        return self.chunk_path(sha256).is_file()

    def put_chunk(self, data: bytes, sha256: str | None = None) -> ChunkRef:
        """Store one chunk (once); an existing one is freshened for gc's grace period."""
        actual = hashlib.sha256(data).hexdigest()
        if sha256 is not None and actual != sha256:
            raise IntegrityError(f"chunk sha256:{sha256} arrived as bytes hashing to {actual}")
        if not data or len(data) > CDC_MAX:
            raise IntegrityError(f"chunk sha256:{actual} has {len(data)} bytes")
        ref = ChunkRef(actual, len(data), git_blob_id(data))
        dest = self.chunk_path(actual)
        try:
            os.utime(dest)
            return ref
        except FileNotFoundError:
            pass
        except PermissionError:
            return ref
        packed = self._codec()[0].compress(data)
        body = b"Z" + packed if len(packed) < len(data) * 0.97 else b"R" + data
        dest.parent.mkdir(parents=True, exist_ok=True)
        with temp_file(self.tmp, prefix="chunk-") as (out, tmp):
            out.write(body)
            out.close()
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        with self._lock:
            self._unsynced.append(dest)
        return ref

    def sync(self) -> None:
        """Make the chunks written since the last call durable."""
        with self._lock:
            new, self._unsynced = self._unsynced, []
        if not new:
            return
        if len(new) > _SYNCFS_OVER and _syncfs(self.chunks):
            return
        dirs = set()
        for path in new:
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            dirs.add(path.parent)
        for d in sorted(dirs):
            fsync_dir(d)

    def read_chunk(self, ref: ChunkRef, *, check: bool = False) -> bytes:
        """A chunk's bytes; ``check`` re-hashes them (else the content hash at EOF does)."""
        path = self.chunk_path(ref.sha256)
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(
                f"chunk sha256:{ref.sha256} is missing from the store",
                hint="run `reprobuild store verify`; building again or a pull restores it",
            ) from None
        data = self.decode(body, ref.sha256)
        if len(data) != ref.size or (check and hashlib.sha256(data).hexdigest() != ref.sha256):
            raise IntegrityError(
                f"chunk sha256:{ref.sha256} is corrupt",
                hint="run `reprobuild store verify`; building again replaces it",
            )
        return data

    def decode(self, body: bytes, sha256: str) -> bytes:
        _, dctx, zstd_error = self._codec()
        try:
            if body[:1] == b"Z":
                return bytes(dctx.decompress(body[1:], max_output_size=CDC_MAX))
            if body[:1] == b"R":
                return body[1:]
        except zstd_error:
            pass
        raise IntegrityError(
            f"chunk sha256:{sha256} is corrupt (undecodable)",
            hint="run `reprobuild store verify`; building again replaces it",
        )

    def chunk_intact(self, sha256: str) -> bool:
        try:
            body = self.chunk_path(sha256).read_bytes()
            return hashlib.sha256(self.decode(body, sha256)).hexdigest() == sha256
        except (FileNotFoundError, IntegrityError):
            return False

    def iter_chunks(self) -> Iterator[tuple[str, Path]]:
        yield from _iter_files(self.chunks)

    def remove_chunk(self, sha256: str) -> int:
        return _remove(self.chunk_path(sha256))

    # ------------------------------------------------------------- manifests

    def manifest_path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.manifests / sha256[:2] / sha256[2:4] / sha256

    def has_manifest(self, sha256: str) -> bool:
        return self.manifest_path(sha256).is_file()

    def manifest(self, sha256: str) -> Manifest | None:
        try:
            data = self.manifest_path(sha256).read_bytes()
        except FileNotFoundError:
            return None
        return Manifest.from_bytes(data, expect=sha256)

    def put_manifest(self, manifest: Manifest) -> None:
        """Publish a manifest: its chunks are made durable first."""
        self.sync()
        dest = self.manifest_path(manifest.sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dest, manifest.to_bytes(), self.tmp, mode=0o444)

    def freshen_manifest(self, sha256: str) -> bool:
        try:
            os.utime(self.manifest_path(sha256))
        except FileNotFoundError:
            return False
        except PermissionError:
            return self.has_manifest(sha256)
        return True

    def iter_manifests(self) -> Iterator[tuple[str, Path]]:
        yield from _iter_files(self.manifests)

    def remove_manifest(self, sha256: str) -> int:
        return _remove(self.manifest_path(sha256))


def _iter_files(top: Path) -> Iterator[tuple[str, Path]]:
    if not top.is_dir():
        return
    for a in sorted(os.listdir(top)):
        pa = top / a
        if not pa.is_dir():
            yield a, pa
            continue
        for b in sorted(os.listdir(pa)):
            pb = pa / b
            if not pb.is_dir():
                yield b, pb
                continue
            for name in sorted(os.listdir(pb)):
                yield name, pb / name


def _remove(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    for parent in (path.parent, path.parent.parent):
        with contextlib.suppress(OSError):
            parent.rmdir()
    return size


def older_than(path: Path, cutoff: float) -> bool:
    """True if ``path`` was last written or freshened before ``cutoff`` (gone: False)."""
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


__all__ = ["ChunkStore", "git_blob_id", "older_than"]
