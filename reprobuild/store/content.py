"""Content by sha256: small objects whole, large ones as content-defined chunks.

* ``lfs/objects/ab/cd/<sha256>``: content up to ``SMALL_MAX`` (4 MiB) as one
  read-only file, exactly where git-lfs keeps objects in a bare repository.
  A consumer can be given its path (bind mount, hard link, ``cp --reflink``)
  without a copy. Stores of format 1 hold large objects here too until
  migrated (see migrate.py); they are read the same way.
* ``lfs/manifests/`` and ``lfs/chunks/`` (see chunks.py, manifest.py):
  larger content, cut into ~64 KiB content-defined chunks stored once each,
  zstd-compressed. Reading streams the chunks (re-making derived regions)
  and re-checks the sha256 at EOF; :meth:`ContentStore.materialized` gives
  a path to a verified copy for consumers that need a file.
* ``lfs/views/<sha256>``: verified copies made by the old ``path_of`` API
  for chunked content; a cache that gc empties.
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
from typing import IO, BinaryIO

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.store._fs import fsync_dir, no_space_named, remove_stale, temp_file
from reprobuild.store.chunks import ChunkStore
from reprobuild.store.manifest import SMALL_MAX, ChunkRef, Manifest
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


class ChunkDamaged(ContentCorrupt):
    """A chunk of a content object is missing or does not decode or hash right."""

    def __init__(self, sha256: str, cause: Exception) -> None:
        IntegrityError.__init__(
            self,
            f"content sha256:{sha256} is corrupt: {cause}",
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


class _ManifestRaw(io.RawIOBase):
    """Streams a chunked object's bytes, re-making derived regions; checks sha256 at EOF."""

    def __init__(self, chunks: ChunkStore, manifest: Manifest) -> None:
        super().__init__()
        self._manifest = manifest
        self._pieces = self._generate(chunks, manifest)
        self._hash = hashlib.sha256()
        self._size = 0
        self._buf = memoryview(b"")
        self._checked = False

    @staticmethod
    def _generate(chunks: ChunkStore, manifest: Manifest) -> Iterator[bytes]:
        last: tuple[str, bytes] = ("", b"")
        for seg in manifest.segments:
            if isinstance(seg, ChunkRef):
                if seg.sha256 != last[0]:  # a run of one chunk (zeros) is read once
                    last = (seg.sha256, chunks.read_chunk(seg))
                yield last[1]
            else:
                from reprobuild.store import derive

                inner = (chunks.read_chunk(c) for c in seg.inner)
                made = 0
                for out in derive.remake(seg.method, seg.params, seg.inner_size, inner):
                    made += len(out)
                    yield out
                if made != seg.size:
                    raise IntegrityError(
                        f"content sha256:{manifest.sha256}: a re-made {seg.method} region has "
                        f"{made} bytes, not {seg.size} (the compressor changed?)"
                    )

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        if not len(out):
            return 0
        while not self._buf:
            try:
                piece = next(self._pieces, None)
            except ContentCorrupt:
                raise
            except (IntegrityError, StoreError) as exc:  # a chunk missing or damaged
                raise ChunkDamaged(self._manifest.sha256, exc) from None
            if piece is None:
                if not self._checked:
                    self._checked = True
                    actual = self._hash.hexdigest()
                    if actual != self._manifest.sha256 or self._size != self._manifest.size:
                        raise ContentCorrupt(self._manifest.sha256, actual)
                return 0
            self._hash.update(piece)
            self._size += len(piece)
            self._buf = memoryview(piece)
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


_ZEROS = bytes(BUFSIZE)


def _copy_sparse(src: BinaryIO, out: IO[bytes]) -> int:
    """Copy ``src`` to the new file ``out``, leaving whole zero buffers as holes
    (a disk image is mostly zeros: no writing, and little to fsync)."""
    buf = bytearray(BUFSIZE)
    view = memoryview(buf)
    size = 0
    hole = False
    while n := src.readinto(view):  # type: ignore[attr-defined]
        size += n
        if n == BUFSIZE and buf == _ZEROS:
            out.seek(n, os.SEEK_CUR)
            hole = True
        else:
            out.write(view[:n])
            hole = False
    if hole:
        out.truncate(size)
    return size


class ContentStore:
    """The ``lfs/`` directory: whole objects, chunks and manifests, ``tmp/`` for writes."""

    def __init__(
        self,
        root: Path,
        publish_lock: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        self.root = root
        self._publish_lock = publish_lock or contextlib.nullcontext
        self.objects = root / "objects"
        self.tmp = root / "tmp"
        self.views = root / "views"
        self.chunks = ChunkStore(root, self.tmp)
        self.small_max = SMALL_MAX

    def create(self) -> None:
        self.objects.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.chunks.create()

    def path(self, sha256: str) -> Path:
        """Where the object is (or would be) kept whole."""
        check_sha256(sha256)
        return self.objects / sha256[:2] / sha256[2:4] / sha256

    def is_whole(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file() or self.chunks.has_manifest(sha256)

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            pass
        manifest = self.chunks.manifest(sha256)
        if manifest is None:
            raise self._missing(sha256)
        return manifest.size

    def freshen(self, sha256: str) -> bool:
        """Touch the object (whole or manifest) for gc's grace period; False if absent."""
        return self._freshen(self.path(sha256)) or self.chunks.freshen_manifest(sha256)

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
        whole: bool = False,
    ) -> Blob:
        """Copy ``fileobj`` in, hashing as it streams; visible only once verified.

        Content over ``small_max`` is chunked unless ``whole``."""
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        if not whole and isinstance(fileobj, io.BytesIO):
            blob = self._put_memory(fileobj, expected_sha256, expected_size)
            if blob is not None:
                return blob
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
            if size > self.small_max and not whole and not self.is_whole(actual):
                out.close()
                return self._put_chunked(tmp, Blob(actual, size))
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

    def put_path(
        self, path: Path, *, expected_sha256: str | None = None, expected_size: int | None = None
    ) -> Blob | None:
        """Chunk a large file in place (no temp copy); None if it is small (use put_stream)."""
        try:
            size = os.stat(path).st_size
        except OSError:
            return None
        if size <= self.small_max or not os.path.isfile(path):
            return None
        from reprobuild.store.ingest import chunk_file

        with self._publish_lock():
            segments, sha, size = chunk_file(self.chunks, path)
            if expected_size is not None and size != expected_size:
                raise IntegrityError(
                    f"content has {size} bytes, expected {expected_size} (got sha256:{sha})",
                    hint="the download was probably truncated; fetch it again",
                )
            if expected_sha256 is not None and sha != expected_sha256:
                raise IntegrityError(
                    f"content hashes to sha256:{sha}, expected sha256:{expected_sha256}"
                )
            if not self.freshen(sha):
                self.chunks.put_manifest(Manifest(sha, size, segments))
        return Blob(sha, size)

    def _put_memory(
        self, fileobj: io.BytesIO, expected_sha256: str | None, expected_size: int | None
    ) -> Blob | None:
        """Chunk a large in-memory value straight from its buffer (None if small)."""
        from reprobuild.store.ingest import chunk_buffer

        start = fileobj.tell()
        with fileobj.getbuffer() as whole_view, whole_view[start:] as view:
            if view.nbytes <= self.small_max:
                return None
            with self._publish_lock():
                segments, sha, size = chunk_buffer(self.chunks, view)
                if expected_size is not None and size != expected_size:
                    raise IntegrityError(f"content has {size} bytes, expected {expected_size}")
                if expected_sha256 is not None and sha != expected_sha256:
                    raise IntegrityError(
                        f"content hashes to sha256:{sha}, expected sha256:{expected_sha256}"
                    )
                if not self.freshen(sha):
                    self.chunks.put_manifest(Manifest(sha, size, segments))
        fileobj.seek(start + size)
        return Blob(sha, size)

    def _put_chunked(self, tmp: Path, blob: Blob) -> Blob:
        """Publish a verified, fully written temp file as chunks plus a manifest."""
        from reprobuild.store.ingest import chunk_file

        with self._publish_lock():
            if self.freshen(blob.sha256):
                return blob
            segments, sha, size = chunk_file(self.chunks, tmp)
            if (sha, size) != (blob.sha256, blob.size):
                raise IntegrityError(f"content sha256:{blob.sha256} changed while being stored")
            self.chunks.put_manifest(Manifest(sha, size, segments))
        return blob

    def put_manifest(self, manifest: Manifest) -> None:
        """Publish a manifest whose chunks are all present (pull, migration)."""
        with self._publish_lock():
            for ref in manifest.unique_chunks().values():
                if not self.chunks.has_chunk(ref.sha256):
                    raise self._missing(manifest.sha256)
            self.chunks.put_manifest(manifest)

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
        raw: io.RawIOBase
        try:
            raw = _VerifyingRaw(self.path(sha256), sha256)
        except FileNotFoundError:
            manifest = self.chunks.manifest(sha256)
            if manifest is None:
                raise self._missing(sha256) from None
            raw = _ManifestRaw(self.chunks, manifest)
        return io.BufferedReader(raw, buffer_size=BUFSIZE)

    @contextlib.contextmanager
    def materialized(self, sha256: str) -> Iterator[Path]:
        """A path holding the content while the ``with`` body runs.

        A whole object is its own (read-only) file: no copy. Chunked content
        is re-assembled, verified, into a private temp file removed afterwards.
        """
        path = self.path(sha256)
        if path.is_file():
            yield path
            return
        with self.open(sha256) as src, temp_file(self.tmp, prefix="view-") as (out, tmp):
            shutil.copyfileobj(src, out, BUFSIZE)
            out.close()
            os.chmod(tmp, 0o444)
            yield tmp

    def view(self, sha256: str) -> Path:
        """A lasting path for the content (whole object, or a verified copy in views/)."""
        path = self.path(sha256)
        if path.is_file():
            return path
        view = self.views / sha256
        try:
            os.utime(view)
            return view
        except FileNotFoundError:
            pass
        if not self.chunks.has_manifest(sha256):
            raise self._missing(sha256)
        self.views.mkdir(parents=True, exist_ok=True)
        with self.open(sha256) as src, temp_file(self.tmp, prefix="view-") as (out, tmp):
            shutil.copyfileobj(src, out, BUFSIZE)
            out.close()
            os.chmod(tmp, 0o444)
            os.replace(tmp, view)
        return view

    def clean_views(self, older_than: float) -> int:
        """Drop views not used for ``older_than`` seconds (they are re-made on demand)."""
        removed = 0
        cutoff = time.time() - older_than
        if not self.views.is_dir():
            return 0
        for path in self.views.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

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
                size = _copy_sparse(src, out)  # verification raises at EOF
                out.flush()
                os.fsync(out.fileno())
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
            return self._chunked_intact(sha256)
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

    def _chunked_intact(self, sha256: str) -> bool:
        """A chunked object: damaged chunks are removed, and then its manifest."""
        try:
            manifest = self.chunks.manifest(sha256)
        except IntegrityError:
            self.chunks.remove_manifest(sha256)
            return False
        if manifest is None:
            return False
        bad = [s for s in manifest.unique_chunks() if not self.chunks.chunk_intact(s)]
        for s in bad:
            self.chunks.remove_chunk(s)
        if not bad:
            try:
                with self.open(sha256) as f:
                    while f.read(BUFSIZE):
                        pass
                return True
            except (IntegrityError, StoreError):
                pass
        self.chunks.remove_manifest(sha256)
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
        """Delete one object (whole, or its manifest); returns the bytes freed."""
        path = self.path(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return self.chunks.remove_manifest(sha256)
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
