"""Outputs already in place are not copied again (the warm build).

``build`` writes every output into its out directory. When nothing changed
the copies there are already right, and copying them out of the store again
(decompressing and re-hashing a 1 GB disk image) was most of an unchanged
build's time. After exporting, ``OUT/.reprobuild-outputs.json`` records, for
each output, its digest and the stat signature of every path it wrote
(device, inode, type and mode, size, mtime and ctime in nanoseconds: what
git's index compares). The next build skips an output whose entry names the
same digest and kind and whose paths all still have that signature.

Why this is safe: any write, truncation, chmod, chown, rename over or
replacement of a path changes its ctime (or its inode), and nobody but the
clock sets a ctime, so a changed output is always exported again. A
directory's own ctime changes when an entry is added, removed or renamed in
it, so an OCI layout's directories are stamped too. File times come from the
kernel's coarse clock: a change made in the same tick as the recording could
keep every field, so stamps younger than :data:`RACY_NS` when recorded are
waited out first (git's "racily clean" entries; a pause of at most that long,
only after a build that exported something).

Outputs are private copies, never hard links to store objects: a link shares
the inode, so ``chmod u+w`` and a write (or any write as root, which ignores
the mode) would change the store's bytes for every later build. A reflink
would be safe but ext4 has none, and chunked content has no single file to
link anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

STATE_NAME: Final = ".reprobuild-outputs.json"
STATE_VERSION: Final = 1
RACY_NS: Final = 20_000_000  # > one tick of the coarse clock at HZ=100 (10 ms)

Stamp = tuple[int, int, int, int, int, int]  # dev, ino, mode, size, mtime_ns, ctime_ns


def stamp(path: Path) -> Stamp | None:
    """The signature of *path* (not following a symlink), or None if it is gone."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _stamp_of(values: object) -> Stamp:
    if not isinstance(values, list) or len(values) != 6:
        raise ValueError("a stamp has six numbers")
    a, b, c, d, e, f = (int(v) for v in values)
    return (a, b, c, d, e, f)


def _paths_of(out_dir: Path, names: Iterable[str]) -> list[str]:
    """The names themselves and, for a directory, everything under it (sorted)."""
    found: list[str] = []
    for name in names:
        found.append(name)
        top = out_dir / name
        if top.is_dir() and not top.is_symlink():
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                rel = os.path.relpath(dirpath, out_dir)
                found.extend(f"{rel}/{n}" for n in sorted(dirnames + filenames))
    return found


@dataclass(frozen=True)
class Entry:
    """One output as exported: what it is and the signature of each path written."""

    kind: str
    sha256: str
    stamps: tuple[tuple[str, Stamp], ...]


class OutputState:
    """The state file of one out directory: read once, updated, written once."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.entries: dict[str, Entry] = {}
        self._written: list[str] = []
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):
            data = json.loads((out_dir / STATE_NAME).read_text())
            if data.get("version") == STATE_VERSION:
                for name, e in data["outputs"].items():
                    stamps = tuple((str(p), _stamp_of(s)) for p, s in e["paths"])
                    self.entries[name] = Entry(str(e["kind"]), str(e["sha256"]), stamps)

    def current(self, name: str, kind: str, sha256: str) -> bool:
        """True if output *name* is in place with these bytes (nothing to copy)."""
        entry = self.entries.get(name)
        if entry is None or (entry.kind, entry.sha256) != (kind, sha256) or not entry.stamps:
            return False
        recorded = {p for p, _ in entry.stamps}
        tops = [p for p in recorded if "/" not in p]
        if set(_paths_of(self.out_dir, tops)) != recorded:
            return False
        return all(stamp(self.out_dir / p) == s for p, s in entry.stamps)

    def forget(self, name: str) -> None:
        """Before an output is rewritten: a crash then leaves no stale entry."""
        self.entries.pop(name, None)

    def exported(self, name: str, kind: str, sha256: str, paths: Iterable[str]) -> None:
        """Record that output *name* was just written to *paths* (relative to out_dir)."""
        self._written.append(name)
        stamps = []
        for p in _paths_of(self.out_dir, paths):
            s = stamp(self.out_dir / p)
            if s is None:
                return  # vanished already: leave it unrecorded, so it is copied next time
            stamps.append((p, s))
        self.entries[name] = Entry(kind, sha256, tuple(stamps))

    def save(self, keep: Iterable[str] | None = None) -> None:
        """Write the state atomically (best effort: without it, outputs are copied again).

        *keep*: the output names of this build (others' entries are dropped).
        """
        if keep is not None:
            wanted = set(keep)
            self.entries = {n: e for n, e in self.entries.items() if n in wanted}
        self._wait_out_racy()
        data = {
            "version": STATE_VERSION,
            "outputs": {
                name: {
                    "kind": e.kind,
                    "sha256": e.sha256,
                    "paths": [[p, list(s)] for p, s in e.stamps],
                }
                for name, e in sorted(self.entries.items())
            },
        }
        dest = self.out_dir / STATE_NAME
        tmp = dest.with_name(f"{STATE_NAME}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(data, sort_keys=True))
            os.replace(tmp, dest)
        with contextlib.suppress(OSError):
            tmp.unlink()

    def _wait_out_racy(self) -> None:
        """Make sure every stamp recorded now is older than RACY_NS (see the module doc)."""
        newest = max(
            (s[5] for n in self._written if n in self.entries for _, s in self.entries[n].stamps),
            default=None,
        )
        if newest is None:
            return
        wait = newest + RACY_NS - time.time_ns()
        if wait > 0:
            time.sleep(wait / 1e9)
