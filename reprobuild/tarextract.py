"""Extracting a tar reprobuild did not just write, on every Python 3.11.

``TarFile.extractall(filter="data")`` (PEP 706) refuses members that leave
the destination, links out of it, device files and absolute names. It came
with Python 3.11.4; Debian 12's python3.11 is 3.11.2 and has no ``filter``
argument, so without this module every OCI export there ended in a
TypeError. On such a Python the same refusals are made here before
extracting, and owners are never restored.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path

from reprobuild.errors import ArchiveError

__all__ = ["extract_all"]


def extract_all(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract every member of ``tar`` under ``dest``, refusing what leaves it."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    for m in tar:  # one at a time: works on a stream ("r|") too
        _check(m)
        tar.extract(m, dest, numeric_owner=True)


def _inside(name: str) -> bool:
    norm = posixpath.normpath(name)
    return not (name.startswith("/") or norm == ".." or norm.startswith("../"))


def _check(m: tarfile.TarInfo) -> None:
    if not _inside(m.name):
        raise ArchiveError(f"tar member {m.name!r} leaves the destination")
    if m.isdev() or m.isfifo():
        raise ArchiveError(f"tar member {m.name!r} is a device or FIFO")
    if m.issym():
        target = posixpath.join(posixpath.dirname(m.name), m.linkname)
        if m.linkname.startswith("/") or not _inside(target):
            raise ArchiveError(f"tar member {m.name!r} links outside the destination")
    if m.islnk() and not _inside(m.linkname):
        raise ArchiveError(f"tar member {m.name!r} links outside the destination")
    m.mode &= 0o755 if m.isfile() or m.isdir() else 0o777
    m.uid = m.gid = 0
    m.uname = m.gname = ""
