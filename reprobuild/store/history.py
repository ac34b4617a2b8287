"""Build history: ``refs/builds/<recipe>/<n>`` records, their listing and removal.

A mixin of :class:`reprobuild.store.core.Store` (kept apart so no module of
the store grows past what one reads at a sitting).
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import TYPE_CHECKING

from dulwich.objects import Commit, ObjectID
from dulwich.repo import Repo

from reprobuild.errors import StoreError
from reprobuild.store._fs import flocked
from reprobuild.store.records import BuildRecord, Output, StepRecord, check_ref_component
from reprobuild.store.reports import BuildInfo, ListEntry

BUILDS_PREFIX = b"refs/builds/"
STEPS_PREFIX = b"refs/steps/"
_BUILD_MSG_RE = re.compile(rb"^build (\S+) #(\d+)")
_MODE_FILE = 0o100644
_MODE_TREE = 0o040000


class BuildHistory:
    """Recording, listing, resolving and removing builds; ``ls`` of builds and steps."""

    if TYPE_CHECKING:
        from pathlib import Path

        repo: Repo
        _refs_lock: Path

        def _writing(self) -> contextlib.AbstractContextManager[None]: ...
        def _publishing(self) -> contextlib.AbstractContextManager[None]: ...
        def _require_content(self, outputs: tuple[Output, ...]) -> None: ...
        def _blob(self, data: bytes) -> ObjectID: ...
        def _tree(self, entries: dict[bytes, tuple[int, ObjectID]]) -> ObjectID: ...
        def _pointer_tree(self, outputs: tuple[Output, ...]) -> ObjectID: ...
        def _commit(
            self, tree: ObjectID, message: bytes, parents: list[ObjectID], when: int
        ) -> ObjectID: ...
        def _commit_obj(self, sha: ObjectID) -> Commit: ...
        def _read_blob(self, tree_id: ObjectID, name: bytes) -> bytes: ...
        def _refs_under(self, prefix: bytes) -> dict[bytes, ObjectID]: ...
        def _get_ref(self, ref: bytes) -> ObjectID | None: ...
        def _put_ref(self, ref: bytes, new: ObjectID) -> None: ...
        def _remove_ref(self, ref: bytes, old: ObjectID) -> bool: ...
        def _clear_stale_lock(self, ref: bytes) -> None: ...
        def _read_step(self, commit_id: ObjectID) -> StepRecord: ...

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

    def remove_build(self, spec: str) -> str:
        """``store rm REF``: delete one build ref (its content goes at the next gc)."""
        ref = self.resolve_build(spec)
        sha = self._get_ref(ref.encode())
        if sha is None or not self._remove_ref(ref.encode(), sha):
            raise StoreError(f"{ref} changed while being removed; try again")
        return ref

