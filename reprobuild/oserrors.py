"""OSErrors from the outside world as project errors a user can act on.

A full disk, a quota, a read-only or forbidden directory are the machine's
state, not bugs: they must end in exit 2 with the path, never in "internal
error". A write that fails with ENOSPC often carries no file name (``write``
on an open file), so the full file system is found among the places the
command writes to (:func:`fullest`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from reprobuild.errors import DiskFull, ReprobuildError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


class AccessDenied(ReprobuildError):
    """A path cannot be written or read: permissions, or a read-only file system."""


class FileSystemError(ReprobuildError):
    """Another failure of the file system (I/O error, name too long, ...)."""


def fullest(candidates: Sequence[Path | str]) -> Path | None:
    """Of the places a command writes to, the one on the file system with the
    least room left (the one that most likely filled up)."""
    best: tuple[int, Path] | None = None
    for c in candidates:
        p = Path(c)
        while not p.exists() and p != p.parent:
            p = p.parent
        try:
            st = os.statvfs(p)
        except OSError:
            continue
        free = st.f_bavail * st.f_frsize
        if best is None or free < best[0]:
            best = (free, Path(c))
    return best[1] if best else None


def project_error(
    exc: OSError, *, where: Sequence[Path | str] = (), what: str = ""
) -> ReprobuildError:
    """The project error for ``exc``; ``where`` are the places written to when
    the error names no file, ``what`` says what was being done."""
    path = exc.filename if exc.filename is not None else fullest(where)
    named = f" {path}" if path is not None else ""
    doing = f" ({what})" if what else ""
    if exc.errno in NO_SPACE:
        quota = " (disk quota exceeded)" if exc.errno == errno.EDQUOT else ""
        return DiskFull(
            f"No space left on device{quota}: cannot write{named}{doing}",
            hint="free space on that file system (`reprobuild store gc` removes what no "
            "build references; TMPDIR moves temporary trees elsewhere) and run the command "
            "again; nothing partial was kept",
        )
    if exc.errno in DENIED:
        why = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return AccessDenied(
            f"{why}:{named or ' (path unknown)'}{doing}",
            hint="choose a place you may write to (-o/--out, --store, TMPDIR) "
            "or fix the permissions",
        )
    return FileSystemError(
        f"{exc.strerror or exc}:{named or ' (path unknown)'}{doing}",
        hint="check the file system and the path, then run the command again",
    )


@contextlib.contextmanager
def outside_world(*where: Path | str, what: str = "") -> Iterator[None]:
    """Turn any OSError in the body into its project error (see :func:`project_error`)."""
    try:
        yield
    except OSError as exc:
        raise project_error(exc, where=where, what=what) from exc


def mentions_no_space(text: str) -> bool:
    """A tool's message that says the disk is full (mkfs, xorriso, mksquashfs, ...)."""
    lowered = text.lower()
    return "no space left on device" in lowered or "disk quota exceeded" in lowered
