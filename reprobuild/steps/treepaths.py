"""Paths in a tree being assembled, which packages and scripts may have filled with links.

Every write the rootfs step makes after packages are in goes through these:
a link that leads out of the tree is refused, never followed.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from reprobuild.errors import UsageError

__all__ = ["inside_tree", "mkdirs", "replaceable"]


def replaceable(tree: Path, path: str) -> Path:
    """*path* in the tree, its parents created and whatever was there removed,
    refusing links that lead out (packages and scripts may have left some)."""
    dest = tree / path.lstrip("/")
    inside_tree(tree, dest, path)
    mkdirs(tree, dest.parent)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    return dest


def mkdirs(tree: Path, directory: Path) -> None:
    """Create missing parents as root-owned 0755, whatever the umask."""
    missing = []
    d = directory
    while not d.exists() and d != tree:
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir()
        os.chmod(d, 0o755)


def inside_tree(tree: Path, dest: Path, shown: str) -> None:
    if ".." in PurePosixPath(shown).parts:
        raise UsageError(f"files: '{shown}' must not contain '..'")
    parent = dest.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.resolve().is_relative_to(tree.resolve()):
        raise UsageError(f"'{shown}' would be written outside the tree (through a link in it)")
