"""A recipe's file inputs as one archive, so an image can carry them (issue 13).

The lockfile an image carries embeds the recipe files (what ``import``
read), but steps also take files and directories by path: ``files = {
"/etc/motd" = ./motd; }``, ``inputs = { src = ./src; }``. Their digests are
in the step keys, so a rebuild needs their bytes: :func:`pack_inputs`
writes them as a tar carried beside the lockfile (an OCI referrer, see
:mod:`reprobuild.export.referrers`) and :func:`unpack_inputs` puts them
back below a rebuilt recipe's directory.

The tar is a function of the inputs alone: sorted names, no owners, mtime 0,
mode 0755 for what is executable (the one bit a step key sees) else 0644,
symbolic links inside directories kept as links (as the step key records
them). A tampered archive cannot make a verification pass: it changes the
step keys, so the rebuild is not the image.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from reprobuild.errors import LockfileError

__all__ = ["input_paths", "pack_inputs", "unpack_inputs"]


def _named_paths(params: Any) -> Iterator[str]:
    """The ``./rel`` paths a step's canonical parameters name (plan.file_digest's shape)."""
    if isinstance(params, Mapping):
        path = params.get("path")
        if isinstance(path, str) and ("sha256" in params or "tree-sha256" in params):
            yield path
        for value in params.values():
            yield from _named_paths(value)
    elif isinstance(params, list):
        for value in params:
            yield from _named_paths(value)


def input_paths(step_params: list[Any], root: Path) -> list[str]:
    """The recipe-relative paths (``motd``, ``lib/tools``) the steps read, sorted,
    kept only where they are inside the recipe's tree."""
    root = root.resolve()
    found = set()
    for params in step_params:
        for display in _named_paths(params):
            rel = PurePosixPath(display)
            if rel.is_absolute() or ".." in rel.parts:
                continue
            real = Path(os.path.realpath(root / rel))
            if real.is_relative_to(root) and real != root and real.exists():
                found.add(rel.as_posix().removeprefix("./"))
    return sorted(found)


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def _entries(root: Path, rel: str) -> Iterator[tuple[str, Path, bool]]:
    """(name, path, followed) below an input: a file input is read through links,
    a directory's own links stay links (as plan._hash_tree sees them)."""
    top = root / rel
    if not top.is_dir():
        yield rel, top, True
        return
    yield rel, top, True
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(filenames + dirnames):
            full = base / name
            yield f"{rel}/{full.relative_to(top).as_posix()}", full, False


def pack_inputs(root: Path, paths: list[str]) -> bytes | None:
    """The inputs *paths* (from :func:`input_paths`) as a reproducible tar; None if none."""
    if not paths:
        return None
    out = io.BytesIO()
    seen: set[str] = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for rel in paths:
            parents = PurePosixPath(rel).parents
            for parent in reversed([p.as_posix() for p in parents if p.as_posix() != "."]):
                if parent not in seen:
                    seen.add(parent)
                    tar.addfile(_info(parent, tarfile.DIRTYPE, 0o755))
            for name, path, followed in _entries(root, rel):
                if name in seen:
                    continue
                seen.add(name)
                if not followed and path.is_symlink():
                    tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, link=os.readlink(path)))
                elif path.is_dir():
                    tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
                elif path.is_file():
                    mode = 0o755 if os.access(path, os.X_OK) else 0o644
                    data = path.read_bytes()
                    tar.addfile(_info(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
    return out.getvalue()


def unpack_inputs(data: bytes, dest: Path) -> None:
    """Put carried inputs back below *dest*; nothing may land outside it."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            from reprobuild.tarextract import extract_all

            extract_all(tar, dest)
    except (tarfile.TarError, OSError) as exc:
        raise LockfileError(f"the image's recipe inputs cannot be unpacked: {exc}") from exc
