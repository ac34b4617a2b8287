"""Content-addressed files: ``lfs/objects/ab/cd/<sha256>`` inside the bare repo.

This is exactly where git-lfs keeps objects in a bare repository, stored
uncompressed and read-only. Plain files (not git blobs) because ingest then
costs one sha256 pass plus a write (measured ~380 MB/s here) where git blobs
cost sha1 + zlib (~35 MB/s with dulwich), and because a consumer can be given
a path (bind mount, loop device, ``cp --reflink``) without a copy.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.store._fs import fsync_dir, no_space_named, remove_stale, temp_file
from reprobuild.store.records import Blob, check_sha256

BUFSIZE = 1 << 20


class ContentMissing(StoreError):
    """The store has no content object with this sha256."""


class ContentCorrupt(IntegrityError):
    """A content object's bytes no longer hash to its name (found while reading it)."""

    def __init__(self, sha256: str, actual: str) -> None:
        super().__init__(
            f"content sha256:{sha256} is corrupt: its bytes hash to sha256:{actual}",
            hint="run `reprobuild store verify`; building again replaces the object",
        )
        self.sha256 = sha256


class _VerifyingRaw(io.RawIOBase):
    """Reads a content file, hashing as it goes; checks the hash at EOF."""

    def __init__(self, path: Path, sha256: str) -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._sha256 = sha256
        self._hash = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        n = self._f.readinto(buffer)
        if n:
            self._hash.update(memoryview(buffer)[:n])
        elif not self._checked and len(memoryview(buffer)) > 0:
            self._checked = True
            actual = self._hash.hexdigest()
            if actual != self._sha256:
                raise ContentCorrupt(self._sha256, actual)
        return n

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class ContentStore:
    """The ``lfs/`` directory: ``objects/`` for content, ``tmp/`` for writes in flight."""

    def __init__(
        self,
        root: Path,
        publish_lock: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        self.root = root
        self._publish_lock = publish_lock or contextlib.nullcontext
        self.objects = root / "objects"
        self.tmp = root / "tmp"

    def create(self) -> None:
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.objects / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise self._missing(sha256) from None

    def _missing(self, sha256: str) -> ContentMissing:
        return ContentMissing(
            f"content sha256:{sha256} is not in the store ({self.root.parent})",
            hint="rebuild it, or `reprobuild store pull` from a store that has it",
        )

    def put_stream(
        self,
        fileobj: BinaryIO,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> Blob:
        """Copy ``fileobj`` in, hashing as it streams; visible only once verified."""
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        h = hashlib.sha256()
        size = 0
        buf = bytearray(BUFSIZE)
        view = memoryview(buf)
        with temp_file(self.tmp, prefix="incoming-") as (out, tmp):
            readinto = getattr(fileobj, "readinto", None)
            while True:
                if readinto is not None:
                    n = readinto(view) or 0
                else:  # a read()-only file object
                    chunk = fileobj.read(BUFSIZE)
                    n = len(chunk)
                    view[:n] = chunk
                if not n:
                    break
                h.update(view[:n])
                out.write(view[:n])
                size += n
                if expected_size is not None and size > expected_size:
                    raise IntegrityError(
                        f"content is larger than the expected {expected_size} bytes"
                        + (f" (expected sha256:{expected_sha256})" if expected_sha256 else "")
                    )
            actual = h.hexdigest()
            if expected_size is not None and size != expected_size:
                raise IntegrityError(
                    f"content has {size} bytes, expected {expected_size}"
                    f" (got sha256:{actual}"
                    + (f", expected sha256:{expected_sha256})" if expected_sha256 else ")"),
                    hint="the download was probably truncated; fetch it again",
                )
            if expected_sha256 is not None and actual != expected_sha256:
                raise IntegrityError(
                    f"content hashes to sha256:{actual}, expected sha256:{expected_sha256}",
                )
            dest = self.path(actual)
            synced = not dest.exists()  # skip the fsync when deduplicating
            if synced:
                out.flush()
                os.fsync(out.fileno())
            out.close()
            os.chmod(tmp, 0o444)
            with self._publish_lock():  # held briefly: gc cannot delete between these
                if self._freshen(dest):
                    return Blob(actual, size)
                if not synced:  # it vanished meanwhile: make our copy durable first
                    fd = os.open(tmp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dest)  # identical bytes if a racing writer won: harmless
        fsync_dir(dest.parent)
        return Blob(actual, size)

    @staticmethod
    def _freshen(dest: Path) -> bool:
        """Touch an existing object so a concurrent gc's grace period protects it."""
        try:
            os.utime(dest)
        except FileNotFoundError:
            return False
        except PermissionError:  # owned by someone else; still present
            return dest.exists()
        return True

    def open(self, sha256: str) -> BinaryIO:
        try:
            raw = _VerifyingRaw(self.path(sha256), sha256)
        except FileNotFoundError:
            raise self._missing(sha256) from None
        return io.BufferedReader(raw, buffer_size=BUFSIZE)

    def export(self, sha256: str, dest: Path) -> Blob:
        """Copy out with verification; ``dest`` appears only complete and correct.

        The temp file beside ``dest`` is flocked while written, so temp files
        a killed export left are recognised and removed by the next one.
        """
        dest = Path(dest)
        prefix = f".{dest.name}.reprobuild-tmp-"
        with no_space_named(dest, "output"):
            dest.parent.mkdir(parents=True, exist_ok=True)
            remove_stale(dest.parent, prefix)
            with (
                self.open(sha256) as src,
                temp_file(dest.parent, prefix=prefix, lock=True) as (out, tmp),
            ):
                shutil.copyfileobj(src, out, BUFSIZE)  # verification raises at EOF
                out.flush()
                os.fsync(out.fileno())
                size = out.tell()
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)  # still open (and locked) until renamed
            fsync_dir(dest.parent)
        return Blob(sha256, size)

    def intact(self, sha256: str) -> bool:
        """Re-hash one object: True if present and whole. A damaged one is
        removed, so the step that made it runs (or the input is fetched) again
        instead of the damage being built into an image."""
        path = self.path(sha256)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return False
        with f:
            h = hashlib.sha256()
            buf = bytearray(BUFSIZE)
            view = memoryview(buf)
            while n := f.readinto(view):
                h.update(view[:n])
            if h.hexdigest() == sha256:
                return True
            with contextlib.suppress(FileNotFoundError):
                # only the file we hashed: a racing writer may have replaced it whole
                if os.stat(path).st_ino == os.fstat(f.fileno()).st_ino:
                    self.remove(sha256)
        return False

    def iter_objects(self) -> Iterator[tuple[str, Path]]:
        """Every (name, path) under objects/, including misplaced or misnamed ones."""
        if not self.objects.is_dir():
            return
        for path in sorted(self.objects.rglob("*")):
            if path.is_file():
                yield path.name, path

    def hash_file(self, path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            buf = bytearray(BUFSIZE)
            view = memoryview(buf)
            while n := f.readinto(view):
                h.update(view[:n])
        return h.hexdigest()

    def remove(self, sha256: str) -> int:
        """Delete one object; returns the bytes freed (0 if already gone)."""
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        for parent in (path.parent, path.parent.parent):
            with contextlib.suppress(OSError):
                parent.rmdir()
        return size

    def clean_tmp(self, older_than: float) -> int:
        """Remove temp files left by killed writers (older than the grace period)."""
        removed = 0
        cutoff = time.time() - older_than
        if not self.tmp.is_dir():
            return 0
        for path in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed
