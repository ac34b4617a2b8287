"""Normalisation (DESIGN.md section 8): what a root holds that records its build.

Logs, caches, locks, machine ids and times a package manager leaves behind
are removed or clamped, the way mmdebstrap and debuerreotype do it, so two
builds of the same inputs give the same tree. Every path is opened through
:class:`reprobuild.tree.SafeRoot`: a root's symlinks never lead outside it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from reprobuild.tree import SafeRoot, TreeError, join_parts

__all__ = ["normalise", "normalise_minimal", "normalise_tree"]


#: Files mmdebstrap deletes after a bootstrap because they log the build.
_LOGS_REMOVED: Final = (
    b"var/log/dpkg.log",
    b"var/log/alternatives.log",
    b"var/log/bootstrap.log",
    b"var/log/apt/history.log",
    b"var/log/apt/term.log",
    b"var/log/apt/eipp.log.xz",
)
_REMOVED: Final = (
    b"var/cache/ldconfig/aux-cache",
    b"var/lib/dbus/machine-id",
    b"var/lib/dpkg/lock",
    b"var/lib/dpkg/lock-frontend",
    b"var/lib/apt/lists/lock",
    b"var/cache/apt/archives/lock",
    b"var/cache/apt/pkgcache.bin",
    b"var/cache/apt/srcpkgcache.bin",
)
#: Directories whose non-directory entries are build-time caches.
_EMPTIED_DIRS: Final = (
    b"var/lib/apt/lists",
    b"var/lib/apt/lists/partial",
    b"var/cache/apt/archives",
    b"var/cache/apt/archives/partial",
)
_OLD_FILE_DIRS: Final = (b"var/lib/dpkg", b"var/cache/debconf")


def _shadow_with_lastchg(data: bytes, days: int) -> bytes:
    lines = data.split(b"\n")
    for index, line in enumerate(lines):
        fields = line.split(b":")
        if len(fields) >= 3 and fields[2] != b"":
            fields[2] = str(days).encode()
            lines[index] = b":".join(fields)
    return b"\n".join(lines)


def normalise_tree(root: Path, *, epoch: int) -> list[str]:
    """Remove or empty build-time state and clamp mtimes; return what changed.

    Following mmdebstrap and DESIGN.md section 8: build logs mmdebstrap
    deletes are deleted and every other file under ``/var/log`` is emptied
    (keeping mode and owner, which packages set deliberately, e.g. ``btmp``);
    ``/etc/machine-id`` is emptied (systemd then treats the image as
    unprovisioned); ``/var/lib/dbus/machine-id``, ``ldconfig``'s aux-cache,
    dpkg and apt locks, apt's package caches, downloaded lists and ``.deb``
    files, the ``*-old`` backups of dpkg and debconf and every
    ``__pycache__`` directory are removed; in ``/etc/shadow`` and
    ``/etc/shadow-`` each non-empty last-change field becomes the epoch's day
    number. Finally every mtime becomes ``min(mtime, epoch)``. Paths are
    resolved inside *root* and never through symlinks.
    """
    changed: list[str] = []
    context = f"normalising {root}"
    with SafeRoot(root) as safe:

        def existing(rel: bytes) -> tuple[bytes, os.stat_result] | None:
            try:
                parent, name = safe.parent(rel.split(b"/"), context=context)
            except TreeError:
                return None
            path = safe.child(parent, name)
            st = safe.lstat(path)
            return None if st is None else (path, st)

        def remove(rel: bytes) -> None:
            found = existing(rel)
            if found is not None and not stat.S_ISDIR(found[1].st_mode):
                os.unlink(found[0], dir_fd=safe.fd)
                changed.append("removed /" + rel.decode("utf-8", "surrogateescape"))

        def truncate(path: bytes, shown: bytes) -> None:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)
            changed.append("emptied /" + shown.decode("utf-8", "surrogateescape"))

        for rel in _LOGS_REMOVED + _REMOVED:
            remove(rel)
        for directory in _EMPTIED_DIRS:
            for name in _list_dir(safe, directory, context):
                remove(directory + b"/" + name)
        for directory in _OLD_FILE_DIRS:
            for name in _list_dir(safe, directory, context):
                if name.endswith(b"-old"):
                    remove(directory + b"/" + name)

        log = existing(b"var/log")
        if log is not None and stat.S_ISDIR(log[1].st_mode):
            for rel, st in _iter_tree(safe, log[0]):
                if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                    truncate(rel, rel)
        machine_id = existing(b"etc/machine-id")
        if machine_id is not None and stat.S_ISREG(machine_id[1].st_mode) and machine_id[1].st_size:
            truncate(machine_id[0], b"etc/machine-id")

        days = epoch // 86400
        for rel in (b"etc/shadow", b"etc/shadow-"):
            found = existing(rel)
            if found is None or not stat.S_ISREG(found[1].st_mode):
                continue
            fd = os.open(found[0], os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
            try:
                with os.fdopen(os.dup(fd), "rb") as handle:
                    data = handle.read()
                new = _shadow_with_lastchg(data, days)
                if new != data:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, new, 0)
                    changed.append("set last-change days in /" + rel.decode())
            finally:
                os.close(fd)

        safe.forget()
        for rel in _find_dirs_named(safe, b".", b"__pycache__"):
            _remove_tree(safe, rel)
            changed.append("removed /" + rel.decode("utf-8", "surrogateescape"))

        _clamp_times(safe, epoch)
    return changed


#: Caches that record inode numbers or file times: never the same twice.
_CLOCK_CACHES: Final = (
    b"var/cache/ldconfig/aux-cache",
    b"var/cache/apt/pkgcache.bin",
    b"var/cache/apt/srcpkgcache.bin",
)


def normalise(root: Path, *, epoch: int, mode: str | None) -> list[str]:
    """The normalisation a step asked for: ``"full"`` (the default) or ``"minimal"``."""
    if mode in ("minimal", "epoch"):
        return normalise_minimal(root, epoch=epoch, every_mtime=mode == "epoch")
    return normalise_tree(root, epoch=epoch)


def normalise_minimal(root: Path, *, epoch: int, every_mtime: bool = False) -> list[str]:
    """Change only what would differ between two builds; return what changed.

    For trees that must stay as a reference tool leaves them (dpkg's
    ``-old`` backups, apt's state, caches that are reproducible): the files
    under ``/var/log`` are emptied (they hold clock readings), the caches in
    :data:`_CLOCK_CACHES` (inode numbers, file times) are removed,
    ``/etc/machine-id`` is emptied, the last-change day in ``/etc/shadow``
    and ``/etc/shadow-`` is lowered to the epoch's day where it is later
    (debuerreotype's rule, bugs.debian.org/857803), and mtimes become
    ``min(mtime, epoch)``, or the epoch itself with *every_mtime* (what
    ``find -exec touch --date=@EPOCH`` does, as archlinux-docker's build).
    """
    changed: list[str] = []
    context = f"normalising {root}"
    days = epoch // 86400
    with SafeRoot(root) as safe:

        def existing(rel: bytes) -> tuple[bytes, os.stat_result] | None:
            try:
                parent, name = safe.parent(rel.split(b"/"), context=context)
            except TreeError:
                return None
            path = safe.child(parent, name)
            st = safe.lstat(path)
            return None if st is None else (path, st)

        def rewrite(path: bytes, new: bytes) -> None:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
            try:
                os.ftruncate(fd, 0)
                if new:
                    os.pwrite(fd, new, 0)
            finally:
                os.close(fd)

        for rel in _CLOCK_CACHES:
            found = existing(rel)
            if found is not None and stat.S_ISREG(found[1].st_mode):
                os.unlink(found[0], dir_fd=safe.fd)
                changed.append("removed /" + rel.decode())
        log = existing(b"var/log")
        if log is not None and stat.S_ISDIR(log[1].st_mode):
            for rel, st in _iter_tree(safe, log[0]):
                if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                    rewrite(rel, b"")
                    changed.append("emptied /" + rel.decode("utf-8", "surrogateescape"))
        machine_id = existing(b"etc/machine-id")
        if machine_id is not None and stat.S_ISREG(machine_id[1].st_mode) and machine_id[1].st_size:
            rewrite(machine_id[0], b"")
            changed.append("emptied /etc/machine-id")
        for rel in (b"etc/shadow", b"etc/shadow-"):
            found = existing(rel)
            if found is None or not stat.S_ISREG(found[1].st_mode):
                continue
            fd = os.open(found[0], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
            with os.fdopen(fd, "rb") as handle:
                data = handle.read()
            new = _shadow_clamped(data, days)
            if new != data:
                rewrite(found[0], new)
                changed.append("clamped last-change days in /" + rel.decode())
        safe.forget()
        _clamp_times(safe, epoch, every=every_mtime)
    return changed


def _shadow_clamped(data: bytes, days: int) -> bytes:
    """awk -F: -v OFS=: '{ if ($3 > days) $3 = days; print }' on each line."""
    lines = data.split(b"\n")
    for index, line in enumerate(lines):
        fields = line.split(b":")
        if len(fields) >= 3 and _awk_number(fields[2]) > days:
            fields[2] = str(days).encode()
            lines[index] = b":".join(fields)
    return b"\n".join(lines)


def _awk_number(field: bytes) -> float:
    """awk compares a numeric-looking field as a number (an empty one is 0)."""
    try:
        return float(field) if field.strip() else 0.0
    except ValueError:
        return 0.0


def _list_dir(safe: SafeRoot, rel: bytes, context: str) -> list[bytes]:
    try:
        stack, st = safe.resolve(rel.split(b"/"), follow_last=False, context=context)
    except TreeError:
        return []
    if st is None or not stat.S_ISDIR(st.st_mode):
        return []
    fd = os.open(
        join_parts(stack),
        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
        dir_fd=safe.fd,
    )
    try:
        with os.scandir(fd) as it:
            return sorted(os.fsencode(e.name) for e in it)
    finally:
        os.close(fd)


def _iter_tree(safe: SafeRoot, top: bytes) -> Iterator[tuple[bytes, os.stat_result]]:
    """(path relative to the root, lstat) for everything below *top*, pre-order."""
    for name in _list_dir_fd(safe, top):
        rel = name if top == b"." else top + b"/" + name
        st = os.lstat(rel, dir_fd=safe.fd)
        yield rel, st
        if stat.S_ISDIR(st.st_mode):
            yield from _iter_tree(safe, rel)


def _find_dirs_named(safe: SafeRoot, top: bytes, wanted: bytes) -> Iterator[bytes]:
    """Directories called *wanted* below *top*, without descending into them."""
    for name in _list_dir_fd(safe, top):
        rel = name if top == b"." else top + b"/" + name
        if stat.S_ISDIR(os.lstat(rel, dir_fd=safe.fd).st_mode):
            if name == wanted:
                yield rel
            else:
                yield from _find_dirs_named(safe, rel, wanted)


def _list_dir_fd(safe: SafeRoot, rel: bytes) -> list[bytes]:
    fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=safe.fd)
    try:
        with os.scandir(fd) as it:
            return sorted(os.fsencode(e.name) for e in it)
    finally:
        os.close(fd)


def _remove_tree(safe: SafeRoot, rel: bytes) -> None:
    for name in _list_dir_fd(safe, rel):
        child = rel + b"/" + name
        if stat.S_ISDIR(os.lstat(child, dir_fd=safe.fd).st_mode):
            _remove_tree(safe, child)
        else:
            os.unlink(child, dir_fd=safe.fd)
    os.rmdir(rel, dir_fd=safe.fd)


def _clamp_times(safe: SafeRoot, epoch: int, *, every: bool = False) -> None:
    """Post-order, so clamping a child never disturbs its parent afterwards.
    *every*: set every mtime to the epoch, not only the later ones."""
    limit = epoch * 1_000_000_000

    def clamp(rel: bytes, st: os.stat_result) -> None:
        if every and st.st_mtime_ns != limit:
            os.utime(rel, ns=(limit, limit), dir_fd=safe.fd, follow_symlinks=False)
        elif st.st_mtime_ns > limit or st.st_mtime_ns < 0:
            ns = min(max(st.st_mtime_ns, 0), limit)
            os.utime(rel, ns=(ns, ns), dir_fd=safe.fd, follow_symlinks=False)

    entries = list(_iter_tree(safe, b"."))
    for rel, st in reversed(entries):
        clamp(rel, st)
    clamp(b".", os.fstat(safe.fd))
