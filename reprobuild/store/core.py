"""The store: a bare git repository (dulwich) plus git-lfs-style content files.

Layout of a store directory (a valid bare git repository)::

    HEAD config objects/ refs/          ordinary git
    refs/steps/<key>                    commit: record.json + outputs/<name> pointers
    refs/builds/<recipe>/<n>            commit: build.json + outputs/ + sources/ pointers,
                                        parent = build n-1 of the same recipe
    lfs/objects/ab/cd/<sha256>          content up to 4 MiB, whole, uncompressed, read-only
    lfs/manifests/ab/cd/<sha256>        larger content: its ordered list of chunks
    lfs/chunks/ab/cd/<sha256>           one ~64 KiB content-defined chunk, zstd, stored once
    lfs/views/<sha256>                  assembled copies made by path_of (a cache)
    lfs/tmp/                            content being written (ignored by verify)
    reprobuild/format                   store format version (2; 1 = no chunks, see migrate.py)
    reprobuild/{gc,refs}.lock           flock(2) files
    reprobuild/stamps/<key>             mtime = last time a step was recorded or used
    reprobuild/tmp/                     git objects being written

Invariant kept by every writer: a ref is created only after everything it
reaches (git objects and content) is durably in place, so a crash at any
moment leaves only unreferenced garbage that ``gc`` collects and ``verify``
ignores. Concurrency: content and git objects are written lock-free (temp +
rename of identical bytes is idempotent); ref updates are compare-and-swap
under ``refs.lock`` (which also makes clearing a dulwich ``<ref>.lock`` left
by a killed process safe); writers take ``gc.lock`` shared while they
publish and record, ``gc`` takes it exclusive, and anything younger than the
grace period survives gc, so a build's not-yet-recorded outputs are safe.
Only reprobuild should write to a store; ``git`` may read it.

Step commits have fixed metadata (author ``reprobuild``, time 0), so a step
commit id is a pure function of the record: two machines that ran the same
step agree on the id and push/pull of steps never conflicts. Build commits
carry the wall-clock time (or ``timestamp=``): they are history, numbered
per store, and the time is what ``store log`` shows.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, overload

from dulwich.errors import ChecksumMismatch, NotGitRepository, ObjectFormatException
from dulwich.objects import Blob as GitBlob
from dulwich.objects import Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref, check_ref_format
from dulwich.repo import Repo

from reprobuild.errors import StoreError
from reprobuild.store._fs import atomic_write_bytes, close_repo, flocked, no_space_named
from reprobuild.store.content import ContentMissing, ContentStore
from reprobuild.store.history import BUILDS_PREFIX, STEPS_PREFIX, BuildHistory
from reprobuild.store.migrate import STORE_FORMAT, MigrateReport
from reprobuild.store.records import (
    Blob,
    Output,
    StepRecord,
    TransferReport,
    check_ref_component,
    check_sha256,
    pointer_bytes,
    tree_entry_name,
)
from reprobuild.store.reports import BuildInfo, GcReport, ListEntry, Problem, VerifyReport

IDENTITY = b"reprobuild <reprobuild@localhost>"
DEFAULT_GRACE_SECONDS = 3600.0
_MODE_FILE = 0o100644
_MODE_TREE = 0o040000
_BUILD_MSG_RE = re.compile(rb"^build (\S+) #(\d+)")
# What reading a missing or damaged git object raises (dulwich, zlib, our checks).
_DAMAGED = (KeyError, ValueError, zlib.error, ObjectFormatException, ChecksumMismatch, StoreError)


# gc.auto 0: git must not repack behind our back; no reflogs to grow.
_CONFIG = """\
[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = true
\tlogAllRefUpdates = false
[gc]
\tauto = 0
"""


def default_store_path() -> Path:
    """``$REPROBUILD_STORE``, else ``${XDG_DATA_HOME:-~/.local/share}/reprobuild/store``."""
    env = os.environ.get("REPROBUILD_STORE")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "reprobuild" / "store"


class _StoreOpen:
    """``Store.open(path)`` opens a store; ``store.open(sha256)`` opens content.

    The brief asks for both spellings; a descriptor keeps them apart instead
    of letting ``store.open(sha)`` silently create a store named after a hash.
    """

    @overload
    def __get__(self, obj: None, owner: type[Store]) -> _OpenStoreFn: ...
    @overload
    def __get__(self, obj: Store, owner: type[Store]) -> _OpenBlobFn: ...
    def __get__(self, obj: Store | None, owner: type[Store]) -> Any:
        if obj is None:
            return owner.open_store
        return obj.open_blob


class _OpenStoreFn(Protocol):
    def __call__(
        self, path: str | os.PathLike[str] | None = None, *, create: bool = True
    ) -> Store: ...


class _OpenBlobFn(Protocol):
    def __call__(self, sha256: str) -> BinaryIO: ...


class Store(BuildHistory):
    """A reprobuild store; see the module docstring for the layout and invariants."""

    def __init__(self, path: Path, repo: Repo) -> None:
        self.path = path
        self.repo = repo
        self._meta = path / "reprobuild"
        self.content = ContentStore(path / "lfs", publish_lock=self._publishing)
        self._tmp = self._meta / "tmp"
        self._stamps = self._meta / "stamps"
        self._gc_lock = self._meta / "gc.lock"
        self._refs_lock = self._meta / "refs.lock"
        self._format_ok = False

    # ------------------------------------------------------------------ open

    @classmethod
    def open_store(
        cls, path: str | os.PathLike[str] | None = None, *, create: bool = True
    ) -> Store:
        """Open the store at ``path`` (default: :func:`default_store_path`); also ``Store.open``.

        A missing store is created (atomically: built aside, then renamed into
        place, so two processes racing to create it both end up using one).
        Any bare git repository can be opened; the store directories are added.
        """
        p = Path(path) if path is not None else default_store_path()
        p = p.expanduser().absolute()
        if not p.exists():
            if not create:
                raise StoreError(
                    f"no store at {p}", hint="it is created by the first build or `store pull`"
                )
            cls._create(p)
        try:
            repo = Repo(str(p))
        except NotGitRepository:
            raise StoreError(
                f"{p} is not a reprobuild store (not a git repository)",
                hint="point --store or REPROBUILD_STORE at an empty or store directory",
            ) from None
        if not repo.bare:
            repo.close()
            raise StoreError(f"{p} is a git work tree, not a bare store repository")
        store = cls(p, repo)
        store._ensure_dirs()
        return store

    @staticmethod
    def _create(p: Path) -> None:
        p.parent.mkdir(parents=True, exist_ok=True)
        aside = p.parent / f".{p.name}.init-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            with no_space_named(p, "a new store at"):
                # A bare repository written by hand (as `git init --bare` would), not
                # by dulwich, whose file objects complain again when collected after
                # a failed write (a full disk).
                for sub in ("objects/info", "objects/pack", "refs/heads", "refs/tags"):
                    (aside / sub).mkdir(parents=True)
                for sub in ("lfs/objects", "lfs/tmp", "reprobuild/tmp", "reprobuild/stamps"):
                    (aside / sub).mkdir(parents=True)
                (aside / "HEAD").write_text("ref: refs/heads/master\n")
                (aside / "config").write_text(_CONFIG)
                (aside / "reprobuild" / "format").write_text(STORE_FORMAT + "\n")
            os.rename(aside, p)
        except BaseException as exc:
            shutil.rmtree(aside, ignore_errors=True)  # half made: never left beside the store
            if not (isinstance(exc, OSError) and p.exists()):  # else: a racing creator won
                raise

    def _ensure_dirs(self) -> None:
        try:
            self.content.create()
            for d in (self._tmp, self._stamps):
                d.mkdir(parents=True, exist_ok=True)
            fmt = self._meta / "format"
            if not fmt.exists():
                atomic_write_bytes(fmt, (STORE_FORMAT + "\n").encode(), self._tmp, mode=0o644)
            self._format_ok = fmt.read_text().strip() == STORE_FORMAT
        except OSError as exc:
            raise StoreError(f"cannot use store {self.path}: {exc}") from exc

    def close(self) -> None:
        close_repo(self.repo)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        close_repo(self.repo, exc)

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --------------------------------------------------------------- content

    def put_stream(
        self,
        fileobj: BinaryIO,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        whole: bool = False,
    ) -> Blob:
        """Store bytes read from ``fileobj`` (streamed, 1 MiB at a time).

        With ``expected_*`` given, a mismatch raises IntegrityError naming both
        hashes and nothing becomes visible in the store.
        """
        with self._writing():
            return self.content.put_stream(
                fileobj, expected_sha256=expected_sha256, expected_size=expected_size, whole=whole
            )

    def put_file(
        self,
        path: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
        whole: bool = False,
    ) -> Blob:
        """Store a file's bytes; see :meth:`put_stream`. A large file is chunked in place.

        ``whole``: keep it as one file whatever its size (already-compressed
        inputs that never change, such as packages: chunks would save nothing,
        and a whole file is read with no copy).
        """
        if not whole:
            with self._writing():
                blob = self.content.put_path(
                    Path(path), expected_sha256=expected_sha256, expected_size=expected_size
                )
            if blob is not None:
                return blob
        with open(path, "rb") as f:
            return self.put_stream(
                f, expected_sha256=expected_sha256, expected_size=expected_size, whole=whole
            )

    def put_bytes(self, data: bytes) -> Blob:
        """Store a small in-memory value."""
        return self.put_stream(io.BytesIO(data))

    def has(self, sha256: str) -> bool:
        """True if the content is here; it is then freshened, so a concurrent gc
        keeps it through its grace period (a caller that finds content usually
        goes on to use or record it: a cached package, a stored InRelease)."""
        return self.content.freshen(sha256)

    def intact(self, sha256: str) -> bool:
        """Re-hash one object; a damaged one is removed (see ContentStore.intact)."""
        return self.content.intact(sha256)

    def size(self, sha256: str) -> int:
        return self.content.size(sha256)

    def open_blob(self, sha256: str) -> BinaryIO:
        """A reader that raises IntegrityError at EOF if the bytes do not hash to ``sha256``.

        Also reachable as ``store.open(sha256)`` on an instance.
        """
        return self.content.open(sha256)

    open = _StoreOpen()

    def read_bytes(self, sha256: str) -> bytes:
        """Whole content in memory (for small objects such as lockfiles), verified."""
        with self.open_blob(sha256) as f:
            return f.read()

    def path_of(self, sha256: str) -> Path:
        """A read-only file holding the content (not re-verified).

        Small content is its own file (zero-copy). Chunked content is
        assembled (verified) into ``lfs/views/``, a cache gc empties: prefer
        :meth:`materialized`, which leaves nothing behind.
        """
        with self._writing():
            return self.content.view(sha256)

    def materialized(self, sha256: str) -> contextlib.AbstractContextManager[Path]:
        """``with store.materialized(sha) as path``: the content as a file for the body.

        No copy for small content (its own read-only file, which a caller may
        hard-link or reflink); a verified temp copy, removed afterwards, for
        chunked content.
        """
        return self.content.materialized(sha256)

    def copy_to(self, sha256: str, dest: str | os.PathLike[str]) -> None:
        """Write the content to ``dest`` (a scratch file a step then owns), verified."""
        if self.content.is_whole(sha256):
            shutil.copyfile(self.content.path(sha256), dest)  # copy_file_range: no user copy
            return
        with self.open_blob(sha256) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def is_whole(self, sha256: str) -> bool:
        """True if the content is one file (``path_of`` then costs nothing)."""
        return self.content.is_whole(sha256)

    def export(self, sha256: str, dest: str | os.PathLike[str]) -> Blob:
        """Copy content to ``dest`` atomically, verifying the sha256 on the way."""
        return self.content.export(sha256, Path(dest))  # names a full disk itself

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A full file system is reported as DiskFull naming the store.

        The first write to a store of an older format migrates it first (migrate.py).
        """
        with no_space_named(self.path, "to the store at"):
            if not self._format_ok:
                self.migrate()
            yield

    def migrate(self) -> MigrateReport:
        """``store migrate``: convert a store of an older format in place (idempotent)."""
        from reprobuild.store.migrate import migrate

        with no_space_named(self.path, "to the store at"):
            report = migrate(self)
        self._format_ok = True
        return report

    @contextlib.contextmanager
    def _publishing(self) -> Iterator[None]:
        """Shared side of the gc lock: gc never deletes what a writer is publishing."""
        with flocked(self._meta / "gc.lock", shared=True):
            yield

    # ------------------------------------------------------------ git objects

    def _add(self, obj: ShaFile) -> ObjectID:
        """Write one git object, lock-free: temp + fsync + rename (no ``.lock`` to go stale)."""
        sha = obj.id
        store = self.repo.object_store
        hexs = sha.decode("ascii")
        loose = Path(store.path) / hexs[:2] / hexs[2:]
        try:
            os.utime(loose)  # freshen for gc's grace period
            return sha
        except FileNotFoundError:
            pass
        except PermissionError:
            return sha
        if sha in store:
            return sha
        loose.parent.mkdir(exist_ok=True)
        atomic_write_bytes(loose, obj.as_legacy_object(), self._tmp, mode=0o444)
        return sha

    def _blob(self, data: bytes) -> ObjectID:
        return self._add(GitBlob.from_string(data))

    def _tree(self, entries: dict[bytes, tuple[int, ObjectID]]) -> ObjectID:
        tree = Tree()
        for name, (mode, sha) in entries.items():
            tree.add(name, mode, sha)
        return self._add(tree)

    def _pointer_tree(self, outputs: tuple[Output, ...]) -> ObjectID:
        return self._tree(
            {
                tree_entry_name(o.name): (_MODE_FILE, self._blob(pointer_bytes(o.blob)))
                for o in outputs
            }
        )

    def _commit(
        self, tree: ObjectID, message: bytes, parents: list[ObjectID], when: int
    ) -> ObjectID:
        c = Commit()
        c.tree = tree
        c.parents = parents
        c.author = c.committer = IDENTITY
        c.author_time = c.commit_time = when
        c.author_timezone = c.commit_timezone = 0
        c.message = message
        return self._add(c)

    def _read_blob(self, tree_id: ObjectID, name: bytes) -> bytes:
        tree = self.repo.object_store[tree_id]
        assert isinstance(tree, Tree)
        _mode, sha = tree[name]
        blob = self.repo.object_store[sha]
        if not isinstance(blob, GitBlob):
            raise StoreError(f"{name.decode()} in tree {tree_id.decode()} is not a file")
        return blob.as_raw_string()

    def _commit_obj(self, sha: ObjectID) -> Commit:
        obj = self.repo.object_store[sha]
        if not isinstance(obj, Commit):
            raise StoreError(f"object {sha.decode()} is not a commit")
        return obj

    # ------------------------------------------------------------------ refs

    def _clear_stale_lock(self, ref: bytes) -> None:
        """Remove a ``<ref>.lock`` left by a killed process (only while holding refs.lock)."""
        with contextlib.suppress(FileNotFoundError):
            (self.path / (ref.decode() + ".lock")).unlink()

    def _set_ref(self, ref: bytes, old: ObjectID | None, new: ObjectID) -> bool:
        """Compare-and-swap ``ref`` from ``old`` (None: must not exist) to ``new``."""
        with flocked(self._refs_lock):
            self._clear_stale_lock(ref)
            if self._get_ref(ref) != old:
                return False
            self._put_ref(ref, new)
            return True

    def _put_ref(self, ref: bytes, new: ObjectID) -> None:
        """Write a loose ref (temp + fsync + rename); only while holding refs.lock.

        Not through dulwich's lock file: when a full disk fails its write,
        its cleanup fails again when collected and prints a traceback.
        """
        if not ref.startswith(b"refs/") or not check_ref_format(Ref(ref)):
            raise StoreError(f"invalid ref name {ref!r}")
        path = self.path / ref.decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, new + b"\n", self._tmp, mode=0o644)

    def _remove_ref(self, ref: bytes, old: ObjectID) -> bool:
        with flocked(self._refs_lock):
            self._clear_stale_lock(ref)
            return bool(self.repo.refs.remove_if_equals(Ref(ref), old))

    def _get_ref(self, ref: bytes) -> ObjectID | None:
        try:
            return self.repo.refs[Ref(ref)]
        except KeyError:
            return None

    def _refs_under(self, prefix: bytes) -> dict[bytes, ObjectID]:
        refs = self.repo.refs.as_dict(Ref(prefix.rstrip(b"/")))
        return {prefix + bytes(k): v for k, v in refs.items()}

    def _require_content(self, outputs: tuple[Output, ...]) -> None:
        for o in outputs:
            if not self.content.freshen(o.sha256):
                raise ContentMissing(
                    f"cannot record {o.name!r}: content sha256:{o.sha256} is not in the store",
                    hint="put the bytes in the store before recording them",
                )
            size = self.content.size(o.sha256)
            if size != o.size:
                raise StoreError(
                    f"cannot record {o.name!r}: sha256:{o.sha256} has {size} bytes, "
                    f"the record says {o.size}"
                )

    # ----------------------------------------------------------------- steps

    def _step_commit(self, record: StepRecord) -> ObjectID:
        entries = {b"record.json": (_MODE_FILE, self._blob(record.to_bytes()))}
        if record.outputs:
            entries[b"outputs"] = (_MODE_TREE, self._pointer_tree(record.outputs))
        tree = self._tree(entries)
        message = f"{record.kind} {record.key}\n".encode()
        return self._commit(tree, message, [], 0)

    def record_step(self, key: str, record: StepRecord, *, replace: bool = False) -> StepRecord:
        """Record what step ``key`` produced; returns the record now in the store.

        The first writer wins: if another complete record is already stored
        under ``key`` it is kept and returned (compare it with yours to detect
        a non-reproducible step) unless ``replace`` is true.
        """
        check_ref_component(key, "step key")
        if record.key != key:
            raise StoreError(f"record for step {record.key} recorded under key {key}")
        ref = STEPS_PREFIX + key.encode()
        with self._writing(), self._publishing():
            self._require_content(record.outputs)
            new = self._step_commit(record)
            while True:
                current = self._get_ref(ref)
                if current == new:
                    break
                if current is not None and not replace:
                    existing = self._try_read_step(current)
                    if existing is not None and all(
                        self.content.has(o.sha256) for o in existing.outputs
                    ):
                        self._touch_stamp(key)
                        return existing
                    # the stored record is dangling or lost its content (a partial
                    # pull, damage): the fresh, complete one replaces it
                if self._set_ref(ref, current, new):
                    break
        self._touch_stamp(key)
        return record

    def _read_step(self, commit_id: ObjectID) -> StepRecord:
        commit = self._commit_obj(commit_id)
        return StepRecord.from_bytes(self._read_blob(commit.tree, b"record.json"))

    def _try_read_step(self, commit_id: ObjectID) -> StepRecord | None:
        """The record, or None if its git objects are missing or damaged."""
        try:
            return self._read_step(commit_id)
        except _DAMAGED:
            return None

    def lookup_step(self, key: str) -> StepRecord | None:
        """The record of step ``key``, or None if absent, dangling, or any output's
        content is gone (the step then runs again and its record replaces this one).

        Found under the shared gc lock and stamped as used: a concurrent
        ``gc --keep-days`` then sees a fresh stamp (younger than its grace
        period) and keeps the record a running build is about to use.
        """
        check_ref_component(key, "step key")
        with self._publishing():
            sha = self._get_ref(STEPS_PREFIX + key.encode())
            if sha is None:
                return None
            record = self._try_read_step(sha)
            if record is None or not all(self.content.has(o.sha256) for o in record.outputs):
                return None
            self._touch_stamp(key)
        return record

    def step_keys(self) -> list[str]:
        return sorted(k[len(STEPS_PREFIX) :].decode() for k in self._refs_under(STEPS_PREFIX))

    def _touch_stamp(self, key: str) -> None:
        stamp = self._stamps / key
        try:
            os.utime(stamp)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                stamp.touch()

    def _stamp_time(self, key: str) -> float:
        try:
            return (self._stamps / key).stat().st_mtime
        except FileNotFoundError:
            self._touch_stamp(key)  # unknown age (e.g. pulled): start counting now
            return time.time()

    # ------------------------------------------------- walk, verify, gc (maintenance.py)

    def _reachable(
        self, roots: dict[bytes, ObjectID], problems: list[Problem] | None = None
    ) -> tuple[set[ObjectID], dict[str, Blob]]:
        """Git objects reachable from ``roots`` and the content pointers among them."""
        from reprobuild.store.maintenance import reachable

        return reachable(self, roots, problems)

    def _record_roots(self) -> dict[bytes, ObjectID]:
        roots = self._refs_under(STEPS_PREFIX)
        roots.update(self._refs_under(BUILDS_PREFIX))
        return roots

    def _all_roots(self, problems: list[Problem] | None = None) -> dict[bytes, ObjectID]:
        roots: dict[bytes, ObjectID] = {}
        for ref in sorted(self.repo.refs.allkeys()):
            if ref == b"HEAD":
                continue
            try:
                roots[bytes(ref)] = self.repo.refs[ref]
            except KeyError:
                if problems is not None:
                    problems.append(Problem(ref.decode(), "unreadable or dangling ref"))
        return roots

    def verify(self, *, deep: bool = False) -> VerifyReport:
        """Re-hash every content object and chunk and walk every ref; report, never repair.

        ``deep`` also re-makes every derived (re-compressed) region and checks
        the whole content's sha256, which costs a compression per region.
        """
        from reprobuild.store.maintenance import verify

        return verify(self, deep=deep)

    def gc(
        self,
        keep_days: float | None = None,
        *,
        keep_builds: int | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> GcReport:
        """Expire builds and steps by policy, then delete what no ref reaches.

        See :func:`reprobuild.store.maintenance.gc` for the rules.
        """
        from reprobuild.store.maintenance import gc

        with self._writing():
            return gc(
                self, keep_days=keep_days, keep_builds=keep_builds, grace_seconds=grace_seconds
            )

    # -------------------------------------------------------------- transfer

    def push(self, remote_url: str) -> TransferReport:
        """Send step and build refs, and the content they reach, to a git remote."""
        from reprobuild.store.transport import push

        return push(self, remote_url)

    def pull(self, remote_url: str, refs: Iterable[str] | None = None) -> TransferReport:
        """Fetch step and build refs (all, or ``refs`` and the steps those builds
        list) and their content; afterwards all of it is local."""
        from reprobuild.store.transport import pull

        with self._writing():
            return pull(self, remote_url, refs)


__all__ = [
    "BUILDS_PREFIX",
    "STEPS_PREFIX",
    "Blob",
    "BuildInfo",
    "GcReport",
    "ListEntry",
    "Problem",
    "Store",
    "VerifyReport",
    "check_sha256",
    "default_store_path",
]
