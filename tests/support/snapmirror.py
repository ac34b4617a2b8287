"""The real snapshot, with every package a lockfile names: for building committed recipes.

The shared mirror (``../shared/mirrors/debian``) holds Debian's genuine
signed ``InRelease`` and full ``Packages.xz`` for the snapshot, but only a
hundred ``.deb`` files. :func:`locked_mirror` lays out a mirror with the same
genuine ``dists/`` (copied, so the lockfile's recorded ``InRelease`` sha256
and signing key still hold) and a pool holding the shared ``.deb`` files
(hard links) plus every other package the lockfiles name, fetched with
``apt-get download NAME=VERSION`` from this machine's apt sources. Each file
is checked against the lockfile's sha256 before it is placed: the mirror is
exactly what the snapshot service would serve for those packages.

By hand (to replay a committed VM recipe)::

    .venv/bin/python -m tests.support.snapmirror /tmp/vm-mirror recipes/debian-vm.repro.lock
    .venv/bin/reprobuild replay recipes/debian-vm.repro.lock --mirror debian=<printed URL>

When apt cannot provide a package (no network, the host's archive moved past
the snapshot), :class:`~tests.support.debmirror.MirrorUnavailable` says which.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from tests.support.debmirror import SHARED, MirrorUnavailable, apt_download


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def locked_packages(lockfiles: Iterable[Path]) -> dict[str, dict[str, object]]:
    """Every package of the lockfiles, by pool path (one snapshot: the shared one's)."""
    out: dict[str, dict[str, object]] = {}
    for lockfile in lockfiles:
        for p in json.loads(lockfile.read_text())["packages"]:
            out[str(p["filename"])] = p
    return out


def locked_mirror(dest: Path, lockfiles: Iterable[Path], timestamp: str) -> str:
    """A mirror at *dest* serving the snapshot *timestamp* and the lockfiles' packages.

    Returns the value for ``--mirror debian=URL``.
    """
    source = SHARED / "archive" / "debian" / timestamp
    if not (source / "dists").is_dir():
        raise MirrorUnavailable(f"the shared mirror has no snapshot {timestamp} ({source})")
    snapshot = dest / "archive" / "debian" / timestamp
    shutil.copytree(source / "dists", snapshot / "dists")
    wanted = locked_packages(lockfiles)
    todo: dict[str, dict[str, object]] = {}
    for rel, p in sorted(wanted.items()):
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shared = source / rel
        if shared.is_file() and _sha256(shared) == p["sha256"]:
            os.link(shared, target)
        else:
            todo[f"{p['name']}={p['version']}"] = p
    downloads = dest / "downloads"
    fetched = apt_download(sorted(todo), downloads)
    by_name = {}
    for path in fetched:
        by_name[path.name.split("_", 1)[0]] = path
    for spec, p in sorted(todo.items()):
        got = by_name.get(str(p["name"]))
        if got is None:
            raise MirrorUnavailable(f"apt-get download {spec} gave no file")
        if _sha256(got) != p["sha256"]:
            raise MirrorUnavailable(
                f"apt-get download {spec} gave a file whose sha256 differs from the lockfile's "
                "(the host's archive no longer serves the snapshot's package)"
            )
        os.replace(got, snapshot / str(p["filename"]))
    shutil.rmtree(downloads, ignore_errors=True)
    return (dest / "archive" / "debian").as_uri() + "/"


def main(argv: list[str]) -> int:
    """``python -m tests.support.snapmirror DEST LOCKFILE...``: print the mirror's URL."""
    if len(argv) < 2:
        print("usage: python -m tests.support.snapmirror DEST LOCKFILE...", file=sys.stderr)
        return 2
    locks = [Path(a) for a in argv[1:]]
    snaps = json.loads(locks[0].read_text())["snapshots"]
    timestamp = str(next(iter(snaps.values()))["timestamp"])
    try:
        print(locked_mirror(Path(argv[0]), locks, timestamp))
    except MirrorUnavailable as exc:
        print(f"snapmirror: {exc}", file=sys.stderr)
        return 2
    return 0


__all__ = ["locked_mirror", "locked_packages"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
