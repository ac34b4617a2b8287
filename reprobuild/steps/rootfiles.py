"""The ``files`` of a rootfs: regular files, symlinks and directories a recipe adds.

An entry is a string (the text), a path beside the recipe, a ``file`` step,
or a set saying what to make, as mkosi's ``ExtraTrees`` and systemd's
tmpfiles would::

    { text = "..."; mode = "0600"; owner = "app:app"; }
    { source = ./bin/tool; mode = "0755"; }
    { symlink = "/usr/share/zoneinfo/UTC"; }
    { directory = true; mode = "0750"; owner = "app"; }

Files default to 0644 root:root and directories to 0755. Owners are names
or numbers; names resolve in the tree's own ``/etc/passwd`` and
``/etc/group`` after the recipe's users and groups exist, so ownership is
applied in a second pass (:func:`apply_owners`). Every path is written
inside the tree, never through a link that leads out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprobuild.errors import UsageError

# (tree, path shown to the user) -> the path to write, parents made, old entry gone
Replaceable = Callable[[Path, str], Path]
MkDirs = Callable[[Path, Path], None]


@dataclass(frozen=True)
class Owned:
    """A path whose owner is set once the accounts exist."""

    path: str
    owner: str
    mode: int | None  # set again after chown, which clears set-id bits


def write_files(
    tree: Path,
    files: Mapping[str, Any],
    *,
    copy_source: Callable[[Mapping[str, Any], Path], None],
    replaceable: Replaceable,
    mkdirs: MkDirs,
) -> list[Owned]:
    """Write every entry (sorted, so a directory comes before what is in it).

    *copy_source* writes the bytes of a source reference (``{"step": key}``
    or a recipe file ``{"path", "sha256"}``) to a destination file. Returns the
    entries whose owner is set later by :func:`apply_owners`.
    """
    owned: list[Owned] = []
    for path, value in sorted(files.items()):
        entry = _entry(path, value)
        kind = entry["kind"]
        if kind == "directory":
            dest = tree / path.lstrip("/")
            if dest.is_dir() and not dest.is_symlink():
                mkdirs(tree, dest.parent)
            else:
                dest = replaceable(tree, path)
                dest.mkdir()
            os.chown(dest, 0, 0)  # before chmod: chown clears set-id bits
            os.chmod(dest, int(entry.get("mode") or "0755", 8))
        elif kind == "symlink":
            dest = replaceable(tree, path)
            dest.symlink_to(entry["symlink"])
            os.chown(dest, 0, 0, follow_symlinks=False)
        else:
            dest = replaceable(tree, path)
            if kind == "text":
                dest.write_bytes(str(entry["text"]).encode("utf-8"))
            else:
                copy_source(entry["source"], dest)
            os.chown(dest, 0, 0)
            os.chmod(dest, int(entry.get("mode") or "0644", 8))
        if entry.get("owner"):
            mode = None if kind == "symlink" else os.lstat(dest).st_mode & 0o7777
            owned.append(Owned(path, str(entry["owner"]), mode))
    return owned


def _entry(path: str, value: Any) -> dict[str, Any]:
    """Any accepted form as ``{"kind": ..., ...}``."""
    if isinstance(value, str):
        return {"kind": "text", "text": value}
    if isinstance(value, dict):
        if "step" in value or "sha256" in value:
            return {"kind": "source", "source": value}
        if "tree-sha256" in value:
            raise UsageError(f'files."{path}": a directory cannot be copied as one file')
        for kind in ("text", "source", "symlink", "directory"):
            if kind in value:
                out = dict(value)
                out["kind"] = kind
                if kind == "source" and "tree-sha256" in out["source"]:
                    raise UsageError(f'files."{path}": a directory cannot be copied as one file')
                return out
    raise UsageError(f'files."{path}": not a file entry')


def apply_owners(tree: Path, owned: list[Owned]) -> None:
    """Set each entry's owner, by name from the tree's own account files or by number."""
    if not owned:
        return
    users = _ids(tree / "etc/passwd")
    groups = _ids(tree / "etc/group")
    primary = _primary_groups(tree / "etc/passwd")
    for item in owned:
        user, _, group = item.owner.partition(":")
        uid = _lookup(user, users, "user", item)
        if group:
            gid = _lookup(group, groups, "group", item)
        elif user.isdigit():
            gid = uid
        else:
            gid = primary[user]
        dest = tree / item.path.lstrip("/")
        os.chown(dest, uid, gid, follow_symlinks=False)
        if item.mode is not None:
            os.chmod(dest, item.mode)


def _lookup(name: str, table: Mapping[str, int], what: str, item: Owned) -> int:
    if name.isdigit():
        return int(name)
    if name not in table:
        raise UsageError(
            f'files."{item.path}": owner {item.owner!r}: no {what} {name!r} in the tree',
            hint=f"add the {what} with users/groups, or give a number",
        )
    return table[name]


def _ids(path: Path) -> dict[str, int]:
    ids: dict[str, int] = {}
    if path.is_file() and not path.is_symlink():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and parts[2].isdigit():
                ids.setdefault(parts[0], int(parts[2]))
    return ids


def _primary_groups(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if path.is_file() and not path.is_symlink():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) >= 4 and parts[3].isdigit():
                out.setdefault(parts[0], int(parts[3]))
    return out
