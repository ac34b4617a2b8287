"""Extracting a tar stream the way ``tar -k -x`` (GNU tar 1.34, as root) does.

debootstrap's first stage runs ``dpkg-deb --fsys-tarfile DEB | tar -k -xf -``
for every required package; what the tree looks like afterwards, mtimes
included, depends on these rules of GNU tar's ``extract.c``:

* ``-k`` (keep old files): a member whose path exists is not extracted. For
  a directory that is silent and leaves the existing one as it is (mode,
  owner and mtime); for anything else it is an error (here:
  :class:`KeptFileError`).
* A new directory's mode, owner and mtime are *delayed*: they are set when
  extraction moves on to a member outside it (a stack, most recent first),
  so creating its contents does not leave it with the time of the
  extraction; an existing directory that gets new entries keeps that time.
* A symlink whose target is absolute or contains ``..`` is created last: an
  empty placeholder file stands in for it, the directories then on the
  stack are restored only after the links are made.
* Owners are the archive's numbers (GNU tar looks names up in the build
  host's ``passwd``; a Debian host gives Debian's static ids).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from reprobuild.errors import ReprobuildError
from reprobuild.tree import SafeRoot, TarReader, extract_entry, member_parts

__all__ = ["KeptFileError", "extract_keep_old"]


class KeptFileError(ReprobuildError):
    """A non-directory member is already there, which ``tar -k`` refuses."""


@dataclass
class _Delayed:
    parts: tuple[bytes, ...]
    path: bytes  # physical, relative to the root
    mtime: int
    after_links: bool = False


@dataclass(frozen=True)
class _Link:
    path: bytes
    target: bytes
    uid: int
    gid: int
    mtime: int


def _ancestor(a: tuple[bytes, ...], b: tuple[bytes, ...]) -> bool:
    return len(a) < len(b) and b[: len(a)] == a


def _delayed_link(target: bytes) -> bool:
    return target.startswith(b"/") or b".." in target.split(b"/")


def extract_keep_old(tree: Path, stream: BinaryIO, *, context: str) -> None:
    """Extract the tar *stream* into *tree* with ``tar -k -x``'s semantics."""
    placed: dict[tuple[bytes, ...], bytes] = {}
    stack: list[_Delayed] = []
    links: list[_Link] = []
    with SafeRoot(tree) as safe:

        def restore(until: tuple[bytes, ...], after_links: bool) -> None:
            while stack:
                top = stack[-1]
                if (top.after_links and not after_links) or _ancestor(top.parts, until):
                    return
                ns = max(0, top.mtime) * 1_000_000_000
                os.utime(top.path, ns=(ns, ns), dir_fd=safe.fd, follow_symlinks=False)
                stack.pop()

        for entry in TarReader(stream):
            parts = member_parts(entry.name, context=context)
            restore(parts, False)
            if not parts:
                continue  # "./" exists
            parent, name = safe.parent(parts, context=context)
            path = safe.child(parent, name)
            if safe.lstat(path) is not None:
                if entry.type == b"5":
                    continue  # mkdir fails with EEXIST; -k keeps what is there
                raise KeptFileError(
                    f"{context}: /{b'/'.join(parts).decode(errors='replace')} already exists "
                    "(tar -k stops here)"
                )
            if entry.type == b"2" and _delayed_link(entry.linkname):
                fd = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0, dir_fd=safe.fd
                )
                os.close(fd)
                links.append(_Link(path, entry.linkname, entry.uid, entry.gid, entry.mtime))
                for delayed in reversed(stack):
                    if delayed.after_links:
                        break
                    delayed.after_links = True
                placed[parts] = path
                continue
            extract_entry(
                safe, entry, parts, uid=entry.uid, gid=entry.gid, placed=placed, context=context
            )
            if entry.type == b"5":
                safe.discard_dir_times()
                stack.append(_Delayed(parts, path, entry.mtime))
        restore((), False)
        for link in links:
            os.unlink(link.path, dir_fd=safe.fd)
            os.symlink(link.target, link.path, dir_fd=safe.fd)
            safe.chown(link.path, link.uid, link.gid, context)
            ns = max(0, link.mtime) * 1_000_000_000
            os.utime(link.path, ns=(ns, ns), dir_fd=safe.fd, follow_symlinks=False)
        restore((), True)
