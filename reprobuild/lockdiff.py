"""What changed between two lockfiles, in words: the announcement of every lockfile change.

A lockfile is evidence shared between organizations, so no command changes
it silently: ``lock`` and ``build`` print these lines (snapshots moved,
packages added, removed or changed version, recorded outputs dropped or
recorded) whenever they write one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reprobuild.lockfile import Lockfile


@dataclass(frozen=True)
class LockChanges:
    """The differences of ``new`` against ``old`` (``old`` None: a new lockfile)."""

    created: bool
    snapshots: tuple[str, ...]  # "snap: debian 20260101T000000Z -> 20260711T101637Z"
    added: tuple[str, ...]  # "name version"
    removed: tuple[str, ...]
    changed: tuple[str, ...]  # "name old -> new"
    outputs: tuple[str, ...]  # "oci: recorded sha256:..." / "oci: dropped (was sha256:...)"
    packages: int  # packages in the new lockfile
    total_size: int  # their bytes

    @property
    def empty(self) -> bool:
        return not (
            self.created
            or self.snapshots
            or self.added
            or self.removed
            or self.changed
            or self.outputs
        )

    def lines(self, *, limit: int = 20) -> list[str]:
        """Human-readable lines; long package lists are cut to ``limit`` names."""
        out: list[str] = list(self.snapshots)
        for word, items in (("added", self.added), ("removed", self.removed)):
            if items:
                shown = ", ".join(items[:limit]) + (
                    f", ... ({len(items) - limit} more)" if len(items) > limit else ""
                )
                out.append(f"{word} {len(items)} package(s): {shown}")
        if self.changed:
            shown = ", ".join(self.changed[:limit]) + (
                f", ... ({len(self.changed) - limit} more)" if len(self.changed) > limit else ""
            )
            out.append(f"changed {len(self.changed)} package(s): {shown}")
        out.extend(self.outputs)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "snapshots": list(self.snapshots),
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "outputs": list(self.outputs),
            "packages": self.packages,
            "total_size": self.total_size,
        }


def _versions(lock: Lockfile) -> dict[tuple[str, str], str]:
    return {(p.name, p.architecture): p.version for p in lock.packages}


def output_changes(
    old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> tuple[str, ...]:
    """Lines for recorded output digests that appear, change or disappear."""
    lines = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, {}).get("sha256"), new.get(name, {}).get("sha256")
        if before == after:
            continue
        if before is None:
            lines.append(f"output {name}: recorded sha256:{after}")
        elif after is None:
            lines.append(f"output {name}: record dropped (was sha256:{before})")
        else:
            lines.append(f"output {name}: sha256:{before} -> sha256:{after}")
    return tuple(lines)


def changes(old: Lockfile | None, new: Lockfile) -> LockChanges:
    """Compare two lockfiles as a reader of the diff would."""
    total = sum(p.size for p in new.packages)
    if old is None:
        return LockChanges(
            True,
            tuple(f"snapshot {s.name}: {s.archive} {s.timestamp}" for s in new.snapshots),
            tuple(f"{p.name} {p.version}" for p in sorted(new.packages)),
            (),
            (),
            output_changes({}, new.outputs),
            len(new.packages),
            total,
        )
    snaps = []
    before = {s.name: s for s in old.snapshots}
    for s in new.snapshots:
        prev = before.pop(s.name, None)
        if prev is None:
            snaps.append(f"snapshot {s.name}: new, {s.archive} {s.timestamp}")
        elif (prev.archive, prev.timestamp) != (s.archive, s.timestamp):
            snaps.append(
                f"snapshot {s.name}: {prev.archive} {prev.timestamp} -> {s.archive} {s.timestamp}"
            )
        elif prev != s:
            snaps.append(f"snapshot {s.name}: {s.archive} {s.timestamp}, indexes re-recorded")
    snaps += [f"snapshot {name}: removed" for name in sorted(before)]
    old_v, new_v = _versions(old), _versions(new)
    added = tuple(f"{n} {new_v[(n, a)]}" for n, a in sorted(set(new_v) - set(old_v)))
    removed = tuple(f"{n} {old_v[(n, a)]}" for n, a in sorted(set(old_v) - set(new_v)))
    changed = tuple(
        f"{n} {old_v[(n, a)]} -> {new_v[(n, a)]}"
        for n, a in sorted(set(old_v) & set(new_v))
        if old_v[(n, a)] != new_v[(n, a)]
    )
    return LockChanges(
        False,
        tuple(snaps),
        added,
        removed,
        changed,
        output_changes(old.outputs, new.outputs),
        len(new.packages),
        total,
    )
