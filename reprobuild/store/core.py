"""The store: a bare git repository (dulwich) plus git-lfs-style content files.

Layout of a store directory (a valid bare git repository)::

    HEAD config objects/ refs/          ordinary git
    refs/steps/<key>                    commit: record.json + outputs/<name> pointers
    refs/builds/<recipe>/<n>            commit: build.json + outputs/ + sources/ pointers,
                                        parent = build n-1 of the same recipe
    lfs/objects/ab/cd/<sha256>          the bytes, uncompressed, read-only
    lfs/tmp/                            content being written (ignored by verify)
    reprobuild/format                   store format version
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
import hashlib
import io
import os
import re
import shutil
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, overload

from dulwich.errors import ChecksumMismatch, NotGitRepository, ObjectFormatException
from dulwich.objects import Blob as GitBlob
from dulwich.objects import Commit, ObjectID, ShaFile, Tree
from dulwich.refs import Ref, check_ref_format
from dulwich.repo import Repo

from reprobuild.errors import StoreError
from reprobuild.store._fs import atomic_write_bytes, flocked, no_space_named
from reprobuild.store.content import ContentMissing, ContentStore
from reprobuild.store.records import (
    Blob,
    BuildRecord,
    Output,
    StepRecord,
    TransferReport,
    check_ref_component,
    check_sha256,
    parse_pointer,
    pointer_bytes,
    tree_entry_name,
)

STORE_FORMAT = "1"
STEPS_PREFIX = b"refs/steps/"
BUILDS_PREFIX = b"refs/builds/"
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


@dataclass(frozen=True)
class BuildInfo:
    """One build commit: where it is, when it was made and what it recorded."""

    ref: str
    recipe: str
    number: int
    commit: str
    time: int
    record: BuildRecord


@dataclass(frozen=True)
class ListEntry:
    """A line of ``store ls``: a build or a step with the size of its outputs."""

    kind: str  # "build" or "step"
    ref: str
    name: str  # recipe name or step kind
    size: int
    outputs: tuple[Output, ...]


@dataclass(frozen=True)
class Problem:
    """One thing ``verify`` found wrong, naming the object or ref concerned."""

    subject: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """``problems`` empty means the store is sound (the CLI exits 1 otherwise)."""

    problems: tuple[Problem, ...]
    content_objects: int
    content_bytes: int
    git_objects: int
    refs: int

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class GcReport:
    """What ``gc`` removed."""

    removed_refs: tuple[str, ...]
    removed_content: int
    freed_bytes: int
    removed_git_objects: int
    kept_young: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


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


class Store:
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
        except OSError as exc:
            raise StoreError(f"cannot use store {self.path}: {exc}") from exc

    def close(self) -> None:
        try:
            self.repo.close()
        except BufferError:
            # A view into a pack's mmap is still referenced, typically from a
            # traceback cycle not yet collected; collect it and close again.
            import gc

            gc.collect()
            self.repo.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            _release_frames(exc)
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # --------------------------------------------------------------- content

    def put_stream(
        self,
        fileobj: BinaryIO,
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> Blob:
        """Store bytes read from ``fileobj`` (streamed, 1 MiB at a time).

        With ``expected_*`` given, a mismatch raises IntegrityError naming both
        hashes and nothing becomes visible in the store.
        """
        with self._writing():
            return self.content.put_stream(
                fileobj, expected_sha256=expected_sha256, expected_size=expected_size
            )

    def put_file(
        self,
        path: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
        expected_size: int | None = None,
    ) -> Blob:
        """Store a file's bytes; see :meth:`put_stream`."""
        with open(path, "rb") as f:
            return self.put_stream(f, expected_sha256=expected_sha256, expected_size=expected_size)

    def put_bytes(self, data: bytes) -> Blob:
        """Store a small in-memory value."""
        return self.put_stream(io.BytesIO(data))

    def has(self, sha256: str) -> bool:
        return self.content.has(sha256)

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
        """The read-only file holding the content (not re-verified: use for zero-copy reads)."""
        p = self.content.path(sha256)
        if not p.is_file():
            raise self.content._missing(sha256)
        return p

    def export(self, sha256: str, dest: str | os.PathLike[str]) -> Blob:
        """Copy content to ``dest`` atomically, verifying the sha256 on the way."""
        return self.content.export(sha256, Path(dest))  # names a full disk itself

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        """A full file system is reported as DiskFull naming the store."""
        return no_space_named(self.path, "to the store at")

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
            p = self.content.path(o.sha256)
            try:
                size = p.stat().st_size
                os.utime(p)
            except FileNotFoundError:
                raise ContentMissing(
                    f"cannot record {o.name!r}: content sha256:{o.sha256} is not in the store",
                    hint="put the bytes in the store before recording them",
                ) from None
            except PermissionError:
                size = p.stat().st_size
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

    # ---------------------------------------------------------------- builds

    def record_build(
        self, recipe_name: str, record: BuildRecord, *, timestamp: int | None = None
    ) -> str:
        """Append a build to the recipe's history; returns ``refs/builds/<recipe>/<n>``.

        ``n`` counts from 1 per recipe, and the commit's parent is build n-1,
        so ``git log refs/builds/NAME/<n>`` reads as the recipe's history.
        """
        check_ref_component(recipe_name, "recipe name")
        if record.recipe != recipe_name:
            raise StoreError(f"build record of {record.recipe!r} recorded as {recipe_name!r}")
        when = int(time.time()) if timestamp is None else int(timestamp)
        with self._writing(), self._publishing():
            self._require_content(record.outputs + record.sources)
            entries = {b"build.json": (_MODE_FILE, self._blob(record.to_bytes()))}
            if record.outputs:
                entries[b"outputs"] = (_MODE_TREE, self._pointer_tree(record.outputs))
            if record.sources:
                entries[b"sources"] = (_MODE_TREE, self._pointer_tree(record.sources))
            tree = self._tree(entries)
            prefix = BUILDS_PREFIX + recipe_name.encode() + b"/"
            with flocked(self._refs_lock):
                numbered = self._numbered(prefix)
                n = max(numbered, default=0) + 1
                parent = numbered.get(n - 1)
                # history goes on from the last build, unless that ref dangles
                parents = (
                    [parent] if parent is not None and parent in self.repo.object_store else []
                )
                lines = [f"build {recipe_name} #{n}", ""]
                lines += [f"{o.name} sha256:{o.sha256} {o.size}" for o in record.outputs]
                commit = self._commit(tree, ("\n".join(lines) + "\n").encode(), parents, when)
                ref = prefix + str(n).encode()
                self._clear_stale_lock(ref)
                if self._get_ref(ref) is not None:
                    raise StoreError(f"{ref.decode()} appeared while recording the build")
                self._put_ref(ref, commit)
        return ref.decode()

    def _numbered(self, prefix: bytes) -> dict[int, ObjectID]:
        out: dict[int, ObjectID] = {}
        for ref, sha in self._refs_under(prefix).items():
            tail = ref[len(prefix) :]
            if tail.isdigit():
                out[int(tail)] = sha
        return out

    def _build_info(self, ref: str, commit_id: ObjectID) -> BuildInfo:
        commit = self._commit_obj(commit_id)
        record = BuildRecord.from_bytes(self._read_blob(commit.tree, b"build.json"))
        m = _BUILD_MSG_RE.match(commit.message)
        number = int(m.group(2)) if m else 0
        return BuildInfo(
            ref=ref,
            recipe=record.recipe,
            number=number,
            commit=commit_id.decode(),
            time=int(commit.commit_time),
            record=record,
        )

    def list_builds(self, recipe: str | None = None) -> list[BuildInfo]:
        """Every build ref (or those of ``recipe``), by recipe then number."""
        prefix = BUILDS_PREFIX + (recipe.encode() + b"/" if recipe else b"")
        infos = [self._build_info(r.decode(), sha) for r, sha in self._refs_under(prefix).items()]
        return sorted(infos, key=lambda i: (i.recipe, i.number))

    def resolve_build(self, spec: str) -> str:
        """``refs/builds/R/n``, ``R/n`` or ``R`` (its latest build) -> the full ref name."""
        if not spec.startswith("refs/"):
            spec = self._recipe_alias(spec)
        if spec.startswith("refs/"):
            ref = spec.encode()
        elif "/" in spec:
            ref = BUILDS_PREFIX + spec.encode()
        else:
            numbered = self._numbered(BUILDS_PREFIX + spec.encode() + b"/")
            if not numbered:
                raise StoreError(f"no builds of {spec!r} in the store")
            ref = BUILDS_PREFIX + f"{spec}/{max(numbered)}".encode()
        if self._get_ref(ref) is None:
            raise StoreError(f"no build {ref.decode()} in the store")
        return ref.decode()

    def _recipe_alias(self, spec: str) -> str:
        """``STEM[/N]`` for ``STEM-<8 hex>[/N]`` when one recipe of that stem has
        builds (build names carry a hash of the recipe's path, see buildref.py)."""
        name, sep, tail = spec.partition("/")
        if self._refs_under(BUILDS_PREFIX + name.encode() + b"/"):
            return spec
        pattern = re.compile(re.escape(name) + r"-[0-9a-f]{8}")
        found = sorted(
            {
                r[len(BUILDS_PREFIX) :].decode().rsplit("/", 1)[0]
                for r in self._refs_under(BUILDS_PREFIX)
            }
        )
        matches = [n for n in found if pattern.fullmatch(n)]
        if len(matches) > 1:
            raise StoreError(
                f"{name!r} names the builds of several recipes: {', '.join(matches)}",
                hint="name one of them (reprobuild store log lists them)",
            )
        return matches[0] + sep + tail if matches else spec

    def read_build(self, spec: str) -> BuildInfo:
        ref = self.resolve_build(spec)
        sha = self._get_ref(ref.encode())
        assert sha is not None
        return self._build_info(ref, sha)

    def log(self, build_ref: str) -> list[BuildInfo]:
        """The build and its ancestors, newest first (``git log`` of the ref)."""
        ref = self.resolve_build(build_ref)
        by_commit = {sha: r.decode() for r, sha in self._refs_under(BUILDS_PREFIX).items()}
        sha = self._get_ref(ref.encode())
        out: list[BuildInfo] = []
        seen: set[ObjectID] = set()
        while sha is not None and sha not in seen:
            seen.add(sha)
            info = self._build_info(by_commit.get(sha, ""), sha)
            out.append(info)
            parents = self._commit_obj(sha).parents
            sha = parents[0] if parents else None
        return out

    # -------------------------------------------------------------------- ls

    def ls(self) -> list[ListEntry]:
        """Builds then steps, each with the total size of its outputs: an output's
        whole size (an OCI image's archive, not only its 400-byte manifest)."""
        steps = []
        whole: dict[str, int] = {}  # an output's digest -> all its step wrote
        for ref, sha in sorted(self._refs_under(STEPS_PREFIX).items()):
            rec = self._read_step(sha)
            total = sum(o.size for o in rec.outputs)
            if rec.outputs:
                whole[rec.outputs[0].sha256] = total
            steps.append(ListEntry("step", ref.decode(), rec.kind, total, rec.outputs))
        entries = [
            ListEntry(
                "build",
                b.ref,
                b.recipe,
                sum(whole.get(o.sha256, o.size) for o in b.record.outputs),
                b.record.outputs,
            )
            for b in self.list_builds()
        ]
        return entries + steps

    # ---------------------------------------------------------------- walk

    def _reachable(
        self, roots: dict[bytes, ObjectID], problems: list[Problem] | None = None
    ) -> tuple[set[ObjectID], dict[str, Blob]]:
        """Git objects reachable from ``roots`` and the content pointers among them.

        With ``problems`` given, missing, corrupt or mistyped objects are
        reported there (each naming the ref it was reached from) instead of raised.
        """
        seen: set[ObjectID] = set()
        pointers: dict[str, Blob] = {}
        store = self.repo.object_store
        for ref, root in sorted(roots.items()):
            stack = [root]
            while stack:
                sha = stack.pop()
                if sha in seen:
                    continue
                seen.add(sha)
                try:
                    obj = store[sha]
                    if problems is not None:
                        obj.check()
                        raw = obj.as_raw_string()
                        header = obj.type_name + b" " + str(len(raw)).encode() + b"\0"
                        if hashlib.sha1(header + raw).hexdigest().encode() != sha:
                            raise ValueError("object bytes do not match its id")
                except KeyError:
                    if problems is None:
                        raise StoreError(
                            f"git object {sha.decode()} reachable from {ref.decode()} is missing"
                        ) from None
                    problems.append(
                        Problem(
                            f"git object {sha.decode()}", f"missing (reachable from {ref.decode()})"
                        )
                    )
                    continue
                except Exception as exc:  # corrupt zlib, bad header, checksum, ...
                    if problems is None:
                        raise StoreError(f"git object {sha.decode()} is corrupt: {exc}") from exc
                    problems.append(
                        Problem(
                            f"git object {sha.decode()}",
                            f"corrupt (reachable from {ref.decode()}): {exc}",
                        )
                    )
                    continue
                if isinstance(obj, Commit):
                    stack.append(obj.tree)
                    stack.extend(obj.parents)
                elif isinstance(obj, Tree):
                    for entry in obj.items():
                        if entry.mode != 0o160000:  # gitlinks point outside the repo
                            stack.append(entry.sha)
                elif isinstance(obj, GitBlob):
                    ptr = parse_pointer(obj.as_raw_string())
                    if ptr is not None:
                        pointers.setdefault(ptr.sha256, ptr)
                        if problems is not None:
                            self._check_pointer(ref, ptr, problems)
        return seen, pointers

    def _check_pointer(self, ref: bytes, ptr: Blob, problems: list[Problem]) -> None:
        try:
            size = self.content.path(ptr.sha256).stat().st_size
        except FileNotFoundError:
            problems.append(
                Problem(f"content sha256:{ptr.sha256}", f"missing (pointed to from {ref.decode()})")
            )
            return
        if size != ptr.size:
            problems.append(
                Problem(
                    f"content sha256:{ptr.sha256}",
                    f"has {size} bytes, {ref.decode()} says {ptr.size}",
                )
            )

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

    # ---------------------------------------------------------------- verify

    def verify(self) -> VerifyReport:
        """Re-hash every content object and walk every ref; report, never repair."""
        problems: list[Problem] = []
        count = total = 0
        for name, path in self.content.iter_objects():
            subject = f"content {path.relative_to(self.path)}"
            try:
                expected = self.content.path(name)
            except StoreError:
                problems.append(Problem(subject, "stray file: not named by a sha256"))
                continue
            if expected != path:
                problems.append(Problem(subject, "misplaced: not where its name says"))
                continue
            actual = self.content.hash_file(path)
            count += 1
            total += path.stat().st_size
            if actual != name:
                problems.append(
                    Problem(f"content sha256:{name}", f"corrupt: its bytes hash to sha256:{actual}")
                )
        roots = self._all_roots(problems)
        for ref, sha in sorted(roots.items()):
            if ref.startswith(STEPS_PREFIX) or ref.startswith(BUILDS_PREFIX):
                self._check_record_ref(ref, sha, problems)
        seen, _ = self._reachable(roots, problems)
        return VerifyReport(tuple(problems), count, total, len(seen), len(roots))

    def _check_record_ref(self, ref: bytes, sha: ObjectID, problems: list[Problem]) -> None:
        try:
            commit = self._commit_obj(sha)
            if ref.startswith(STEPS_PREFIX):
                rec = StepRecord.from_bytes(self._read_blob(commit.tree, b"record.json"))
                if rec.key.encode() != ref[len(STEPS_PREFIX) :]:
                    problems.append(Problem(ref.decode(), f"holds the record of step {rec.key}"))
            else:
                BuildRecord.from_bytes(self._read_blob(commit.tree, b"build.json"))
        except KeyError:
            problems.append(
                Problem(ref.decode(), f"points to missing or incomplete commit {sha.decode()}")
            )
        except Exception as exc:
            problems.append(Problem(ref.decode(), f"unreadable record in {sha.decode()}: {exc}"))

    # -------------------------------------------------------------------- gc

    def gc(
        self,
        keep_days: float | None = None,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> GcReport:
        """Delete what no ref reaches; with ``keep_days``, first expire old step refs.

        Semantics: build refs are history and are never removed here. With
        ``keep_days``, a step ref is removed when it was last recorded or
        looked up more than ``keep_days`` ago (and more than ``grace_seconds``
        ago: a running build may just have looked it up) AND no build record
        lists its key (so everything a recorded build used, inputs included,
        stays for replay). Then content files and git objects unreachable from any
        ref are deleted, except those younger than ``grace_seconds``: a
        concurrent build may have stored them and not yet recorded the step.
        """
        removed_refs: list[str] = []
        notes: list[str] = []
        now = time.time()
        with self._writing(), flocked(self._gc_lock):
            if keep_days is not None:
                used: set[str] = set()
                for info in self.list_builds():
                    used.update(info.record.steps)
                cutoff = min(now - keep_days * 86400, now - grace_seconds)
                for ref, sha in sorted(self._refs_under(STEPS_PREFIX).items()):
                    key = ref[len(STEPS_PREFIX) :].decode()
                    if key in used or self._stamp_time(key) >= cutoff:
                        continue
                    if self._remove_ref(ref, sha):
                        removed_refs.append(ref.decode())
                        with contextlib.suppress(FileNotFoundError):
                            (self._stamps / key).unlink()
            roots = self._all_roots()
            reachable, pointers = self._reachable(roots)
            removed_content = freed = young = 0
            for name, path in list(self.content.iter_objects()):
                if name in pointers:
                    continue
                try:
                    if now - path.stat().st_mtime < grace_seconds:
                        young += 1
                        continue
                except FileNotFoundError:
                    continue
                try:
                    freed += self.content.remove(name)
                except StoreError:  # stray name: leave it for verify to report
                    continue
                removed_content += 1
            removed_git = self._gc_git(reachable, now - grace_seconds)
            self.content.clean_tmp(grace_seconds)
            self.repo.object_store.prune(grace_period=int(grace_seconds))  # tmp_pack_* files
            self._clean_dir(self._tmp, now - grace_seconds)
            live_keys = {r[len(STEPS_PREFIX) :].decode() for r in self._refs_under(STEPS_PREFIX)}
            for stamp in self._stamps.iterdir():
                if stamp.name not in live_keys and stamp.stat().st_mtime < now - grace_seconds:
                    with contextlib.suppress(FileNotFoundError):
                        stamp.unlink()
        return GcReport(
            tuple(removed_refs), removed_content, freed, removed_git, young, tuple(notes)
        )

    def _gc_git(self, reachable: set[ObjectID], cutoff: float) -> int:
        store = self.repo.object_store
        removed = 0
        objects_dir = Path(store.path)
        for sha in list(store._iter_loose_objects()):
            if sha in reachable:
                continue
            hexs = sha.decode()
            path = objects_dir / hexs[:2] / hexs[2:]
            try:
                if path.stat().st_mtime >= cutoff:
                    continue
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
        packs = [p for p in store.packs if os.path.getmtime(p._data_path) < cutoff]
        dead = {sha for p in packs for sha in p if sha not in reachable}
        if dead:
            store.repack(exclude=dead)
            removed += len(dead)
        return removed

    @staticmethod
    def _clean_dir(directory: Path, cutoff: float) -> None:
        if not directory.is_dir():
            return
        for p in directory.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if p.is_file() and p.stat().st_mtime < cutoff:
                    p.unlink()
                elif p.is_dir() and p.stat().st_mtime < cutoff:
                    shutil.rmtree(p, ignore_errors=True)

    # -------------------------------------------------------------- transfer

    def push(self, remote_url: str) -> TransferReport:
        """Send step and build refs, and the content they reach, to a git remote."""
        from reprobuild.store.transport import push

        return push(self, remote_url)

    def pull(self, remote_url: str) -> TransferReport:
        """Fetch step and build refs and their content; afterwards all is local."""
        from reprobuild.store.transport import pull

        with self._writing():
            return pull(self, remote_url)


__all__ = [
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


def _release_frames(exc: BaseException) -> None:
    """Drop the locals of the finished frames an exception (and its causes) holds.

    When dulwich fails while inflating a pack object (a damaged or half-replaced
    pack), its frame still holds a memoryview slice of the pack's mmap; closing
    the store during that exception's propagation then fails with BufferError
    ("cannot close exported pointers exist"), which replaced the real error.
    """
    import traceback

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__

