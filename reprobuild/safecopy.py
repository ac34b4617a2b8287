"""Copying and hashing files someone else laid out, without reading what is not a file.

A recipe's directory, a run step's input or output tree may hold device
nodes, FIFOs or sockets (an unpacked OCI bundle has ``rootfs/dev/full``).
Reading ``/dev/full`` or ``/dev/zero`` as a file never ends and fills a disk;
opening a FIFO blocks for ever. Everything here opens with ``O_NOFOLLOW |
O_NONBLOCK``, checks the type with ``fstat`` on the open descriptor (no race
with a rename), and refuses anything but directories, regular files and
symbolic links, naming the path.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from reprobuild.errors import ReprobuildError

CHUNK = 1 << 20


class SpecialFile(ReprobuildError):
    """A device node, FIFO or socket where a file or directory was expected."""


def kind_of(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(path: Path | str, mode: int, what: str) -> SpecialFile:
    return SpecialFile(
        f"{path} is {kind_of(mode)}: {what} reads only regular files, directories and "
        "symbolic links",
        hint="move it out of the recipe's tree, or leave it out of the inputs",
    )


def open_regular(path: Path | str, what: str = "reprobuild") -> BinaryIO:
    """Open a regular file for reading; never a device, FIFO or socket (nor follow a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode, what)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def copy_file(src: Path, dest: Path, what: str = "reprobuild") -> None:
    """Copy a regular file with its permission bits and times (as ``shutil.copy2``)."""
    with open_regular(src, what) as fin:
        st = os.fstat(fin.fileno())
        with open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
    os.chmod(dest, stat.S_IMODE(st.st_mode))
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))


def walk(root: Path, what: str = "reprobuild") -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry below ``root`` (not following links), sorted by name, with its
    lstat; special files are refused."""
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name, reverse=True)
        for e in entries:
            p = Path(e.path)
            st = e.stat(follow_symlinks=False)
            if not (
                stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
            ):
                raise _refuse(p, st.st_mode, what)
            yield p, st
            if stat.S_ISDIR(st.st_mode):
                stack.append(p)


def copy_tree(src: Path, dest: Path, what: str = "reprobuild") -> None:
    """Copy a directory tree as ``shutil.copytree(symlinks=True)`` does (modes and
    times kept, links copied as links), refusing device nodes, FIFOs and sockets."""
    dirs: list[tuple[Path, os.stat_result]] = [(dest, os.stat(src))]
    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o700)
    for path, st in sorted(walk(src, what), key=lambda x: str(x[0])):
        target = dest / path.relative_to(src)
        if stat.S_ISDIR(st.st_mode):
            target.mkdir(mode=0o700)
            dirs.append((target, st))
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(path), target)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        else:
            copy_file(path, target, what)
    for d, st in reversed(dirs):  # deepest first: a read-only parent is set last
        os.chmod(d, stat.S_IMODE(st.st_mode))
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
