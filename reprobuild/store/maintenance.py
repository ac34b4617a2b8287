"""Walking, verifying and collecting a store: what refs reach, damage, retention and gc.

Reachability has two parts. Git objects: everything reachable from any ref,
history included (build commits chain to the previous build of the recipe, so
``store log`` keeps working after old builds are removed; they are tiny).
Content: only what the *tips* of refs point to (a ref's own tree, not its
ancestors'), so removing a build ref lets gc delete the content of that build
while its commit stays as history.

gc runs in phases, each leaving a consistent store if the process is killed
there (``REPROBUILD_GC_KILL_AT=<phase>`` makes it SIGKILL itself at that point,
for the crash tests): refs are removed first (builds, then steps nothing kept
lists), then whole objects and manifests no kept ref reaches, then chunks no
remaining manifest lists, then git objects. A deletion never precedes the
removal of whatever reached the deleted thing, and everything younger than the
grace period is kept (a running build may have stored it and not yet recorded it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from dulwich.objects import Blob as GitBlob
from dulwich.objects import Commit, ObjectID, Tree

from reprobuild.errors import IntegrityError, StoreError
from reprobuild.store._fs import flocked
from reprobuild.store.chunks import older_than
from reprobuild.store.manifest import Manifest
from reprobuild.store.records import Blob, BuildRecord, StepRecord, parse_pointer
from reprobuild.store.reports import GcReport, Problem, VerifyReport

if TYPE_CHECKING:
    from reprobuild.store.core import Store

GC_PHASES = (
    "locked",
    "builds-removed",
    "steps-removed",
    "marked",
    "objects-swept",
    "manifests-swept",
    "chunks-swept",
    "git-swept",
    "done",
)


def _phase(name: str) -> None:
    if os.environ.get("REPROBUILD_GC_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------ walk


def reachable(
    store: Store, roots: dict[bytes, ObjectID], problems: list[Problem] | None = None
) -> tuple[set[ObjectID], dict[str, Blob]]:
    """Git objects reachable from ``roots`` and the content pointers of the ref tips.

    With ``problems`` given, missing, corrupt or mistyped objects are reported
    there (each naming the ref it was reached from) instead of raised.
    """
    seen: set[ObjectID] = set()
    seen_tip: set[ObjectID] = set()
    pointers: dict[str, Blob] = {}
    objects = store.repo.object_store
    for ref, root in sorted(roots.items()):
        stack: list[tuple[ObjectID, bool]] = [(root, True)]
        while stack:
            sha, tip = stack.pop()
            if sha in (seen_tip if tip else seen):
                continue
            if tip:
                seen_tip.add(sha)
            first = sha not in seen
            seen.add(sha)
            try:
                obj = objects[sha]
                if problems is not None and first:
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
                if first:
                    problems.append(
                        Problem(
                            f"git object {sha.decode()}", f"missing (reachable from {ref.decode()})"
                        )
                    )
                continue
            except Exception as exc:  # corrupt zlib, bad header, checksum, ...
                if problems is None:
                    raise StoreError(f"git object {sha.decode()} is corrupt: {exc}") from exc
                if first:
                    problems.append(
                        Problem(
                            f"git object {sha.decode()}",
                            f"corrupt (reachable from {ref.decode()}): {exc}",
                        )
                    )
                continue
            if isinstance(obj, Commit):
                stack.extend((p, False) for p in obj.parents)
                stack.append((obj.tree, tip))
            elif isinstance(obj, Tree):
                for entry in obj.items():
                    if entry.mode != 0o160000:  # gitlinks point outside the repo
                        stack.append((entry.sha, tip))
            elif isinstance(obj, GitBlob) and tip:
                ptr = parse_pointer(obj.as_raw_string())
                if ptr is not None and ptr.sha256 not in pointers:
                    pointers[ptr.sha256] = ptr
                    if problems is not None:
                        _check_pointer(store, ref, ptr, problems)
    return seen, pointers


def _check_pointer(store: Store, ref: bytes, ptr: Blob, problems: list[Problem]) -> None:
    try:
        size = store.content.size(ptr.sha256)
    except StoreError:
        problems.append(
            Problem(f"content sha256:{ptr.sha256}", f"missing (pointed to from {ref.decode()})")
        )
        return
    except IntegrityError as exc:
        problems.append(Problem(f"content sha256:{ptr.sha256}", str(exc)))
        return
    if size != ptr.size:
        problems.append(
            Problem(
                f"content sha256:{ptr.sha256}", f"has {size} bytes, {ref.decode()} says {ptr.size}"
            )
        )


# ---------------------------------------------------------------- verify


def verify(store: Store, *, deep: bool = False) -> VerifyReport:
    """Re-hash every whole object and chunk, check manifests, walk every ref.

    A chunked object is sound when its manifest parses (naming itself) and every
    chunk it lists hashes to its name; ``deep`` also re-assembles it (re-making
    derived regions) and hashes the whole.
    """
    from reprobuild.store.history import BUILDS_PREFIX, STEPS_PREFIX

    content = store.content
    problems: list[Problem] = []
    count = total = 0
    for name, path in content.iter_objects():
        subject = f"content {path.relative_to(store.path)}"
        try:
            expected = content.path(name)
        except StoreError:
            problems.append(Problem(subject, "stray file: not named by a sha256"))
            continue
        if expected != path:
            problems.append(Problem(subject, "misplaced: not where its name says"))
            continue
        actual = content.hash_file(path)
        count += 1
        total += path.stat().st_size
        if actual != name:
            problems.append(
                Problem(f"content sha256:{name}", f"corrupt: its bytes hash to sha256:{actual}")
            )
    bad_chunks: set[str] = set()
    for name, path in content.chunks.iter_chunks():
        try:
            ok = content.chunks.chunk_path(name) == path and content.chunks.chunk_intact(name)
        except StoreError:
            ok = False
        if not ok:
            bad_chunks.add(name)
            problems.append(Problem(f"chunk {path.relative_to(store.path)}", "corrupt or stray"))
    for name, path in content.chunks.iter_manifests():
        try:
            manifest = Manifest.from_bytes(path.read_bytes(), expect=name)
        except (IntegrityError, OSError) as exc:
            problems.append(Problem(f"manifest {path.relative_to(store.path)}", str(exc)))
            continue
        count += 1
        total += manifest.size
        missing = [
            c.sha256
            for c in manifest.unique_chunks().values()
            if c.sha256 in bad_chunks or not content.chunks.has_chunk(c.sha256)
        ]
        if missing:
            problems.append(
                Problem(
                    f"content sha256:{name}",
                    f"{len(missing)} chunk(s) missing or corrupt, e.g. sha256:{missing[0]}",
                )
            )
        elif deep:  # re-make derived regions and hash the whole (each chunk was checked)
            _check_stream(store, name, problems)
    roots = store._all_roots(problems)
    for ref, sha in sorted(roots.items()):
        if ref.startswith(STEPS_PREFIX) or ref.startswith(BUILDS_PREFIX):
            _check_record_ref(store, ref, sha, problems)
    seen, _ = reachable(store, roots, problems)
    return VerifyReport(tuple(problems), count, total, len(seen), len(roots))


def _check_stream(store: Store, sha256: str, problems: list[Problem]) -> None:
    try:
        with store.content.open(sha256) as f:
            while f.read(1 << 20):
                pass
    except (IntegrityError, StoreError) as exc:
        problems.append(Problem(f"content sha256:{sha256}", f"corrupt: {exc}"))


def _check_record_ref(store: Store, ref: bytes, sha: ObjectID, problems: list[Problem]) -> None:
    from reprobuild.store.history import STEPS_PREFIX

    try:
        commit = store._commit_obj(sha)
        if ref.startswith(STEPS_PREFIX):
            rec = StepRecord.from_bytes(store._read_blob(commit.tree, b"record.json"))
            if rec.key.encode() != ref[len(STEPS_PREFIX) :]:
                problems.append(Problem(ref.decode(), f"holds the record of step {rec.key}"))
        else:
            BuildRecord.from_bytes(store._read_blob(commit.tree, b"build.json"))
    except KeyError:
        problems.append(
            Problem(ref.decode(), f"points to missing or incomplete commit {sha.decode()}")
        )
    except Exception as exc:
        problems.append(Problem(ref.decode(), f"unreadable record in {sha.decode()}: {exc}"))


# -------------------------------------------------------------------- gc


def gc(
    store: Store,
    *,
    keep_days: float | None,
    keep_builds: int | None,
    grace_seconds: float,
) -> GcReport:
    """Apply the retention policy, then delete what no ref reaches.

    Builds: with ``keep_builds`` N, a build ref is kept if it is one of the
    newest N of its recipe or (with ``keep_days`` too) younger than that; the
    others are removed. Without ``keep_builds`` every build is kept.
    Steps (only when a policy is given): a step ref is removed when no kept
    build lists it and its stamp (last recorded or looked up) is older than
    the grace period and than ``keep_days`` (if given). So ``--keep-builds``
    also drops cached steps no kept build uses (a kill between removing builds
    and steps is finished by the next gc); ``--keep-days`` alone keeps every
    build and the steps they list, as before.
    Then content (whole objects, manifests, chunks) and git objects that no
    remaining ref reaches are deleted, except those younger than the grace period.
    """
    from reprobuild.store.history import STEPS_PREFIX

    now = time.time()
    cutoff = now - grace_seconds
    removed_refs: list[str] = []
    notes: list[str] = []
    with flocked(store._gc_lock):
        _phase("locked")
        builds = store.list_builds()
        drop: set[str] = set()
        if keep_builds is not None:
            by_recipe = defaultdict(list)
            for info in builds:
                by_recipe[info.recipe].append(info)
            for infos in by_recipe.values():
                infos.sort(key=lambda i: i.number, reverse=True)
                for info in infos[keep_builds:]:
                    recent = keep_days is not None and info.time >= now - keep_days * 86400
                    if not recent:
                        drop.add(info.ref)
        kept_steps: set[str] = set()
        for info in builds:
            if info.ref in drop:
                sha = store._get_ref(info.ref.encode())
                if sha is not None and store._remove_ref(info.ref.encode(), sha):
                    removed_refs.append(info.ref)
                    continue
            kept_steps.update(info.record.steps)
        _phase("builds-removed")
        if keep_days is not None or keep_builds is not None:
            days_cutoff = now - keep_days * 86400 if keep_days is not None else None
            for ref, sha in sorted(store._refs_under(STEPS_PREFIX).items()):
                key = ref[len(STEPS_PREFIX) :].decode()
                if key in kept_steps:
                    continue
                used = store._stamp_time(key)
                if used >= cutoff or (days_cutoff is not None and used >= days_cutoff):
                    continue
                if store._remove_ref(ref, sha):
                    removed_refs.append(ref.decode())
                    with contextlib.suppress(FileNotFoundError):
                        (store._stamps / key).unlink()
        _phase("steps-removed")
        roots = store._all_roots()
        reached, pointers = reachable(store, roots)
        _phase("marked")
        content = store.content
        removed_content = freed = young = 0
        for name, path in list(content.iter_objects()):
            if name in pointers:
                continue
            if not older_than(path, cutoff):
                young += 1
                continue
            try:
                freed += content.remove(name)
            except StoreError:  # stray name: leave it for verify to report
                continue
            removed_content += 1
        _phase("objects-swept")
        live_chunks: set[str] = set()
        for name, path in list(content.chunks.iter_manifests()):
            if name in pointers or not older_than(path, cutoff):
                if name not in pointers:
                    young += 1
                try:
                    manifest = Manifest.from_bytes(path.read_bytes(), expect=name)
                except (IntegrityError, OSError):
                    notes.append(f"manifest {name} is unreadable; kept for verify to report")
                    continue
                live_chunks.update(manifest.unique_chunks())
                continue
            try:
                freed += content.chunks.remove_manifest(name)
            except StoreError:
                continue
            removed_content += 1
        _phase("manifests-swept")
        removed_chunks = 0
        for name, path in list(content.chunks.iter_chunks()):
            if name in live_chunks or not older_than(path, cutoff):
                continue
            try:
                freed += content.chunks.remove_chunk(name)
            except StoreError:
                continue
            removed_chunks += 1
        _phase("chunks-swept")
        removed_git = _gc_git(store, reached, cutoff)
        _phase("git-swept")
        content.clean_tmp(grace_seconds)
        content.clean_views(grace_seconds)
        store.repo.object_store.prune(grace_period=int(grace_seconds))  # tmp_pack_* files
        _clean_dir(store._tmp, cutoff)
        live_keys = {r[len(STEPS_PREFIX) :].decode() for r in store._refs_under(STEPS_PREFIX)}
        for stamp in store._stamps.iterdir():
            if stamp.name not in live_keys and older_than(stamp, cutoff):
                with contextlib.suppress(FileNotFoundError):
                    stamp.unlink()
        _phase("done")
    return GcReport(
        tuple(removed_refs),
        removed_content,
        freed,
        removed_git,
        young,
        tuple(notes),
        removed_chunks,
    )


def _gc_git(store: Store, reached: set[ObjectID], cutoff: float) -> int:
    objects = store.repo.object_store
    removed = 0
    objects_dir = Path(objects.path)
    for sha in list(objects._iter_loose_objects()):
        if sha in reached:
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
    packs = [p for p in objects.packs if os.path.getmtime(p._data_path) < cutoff]
    dead = {sha for p in packs for sha in p if sha not in reached}
    if dead:
        objects.repack(exclude=dead)
        removed += len(dead)
    return removed


def _clean_dir(directory: Path, cutoff: float) -> None:
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if p.is_file() and p.stat().st_mtime < cutoff:
                p.unlink()
            elif p.is_dir() and p.stat().st_mtime < cutoff:
                shutil.rmtree(p, ignore_errors=True)
