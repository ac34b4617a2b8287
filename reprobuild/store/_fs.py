"""Small file-system primitives the store's crash safety rests on.

Every durable write goes temp file -> fsync -> rename -> fsync(directory), so
a reader (or a process killed half way) sees either the old state or the new
one, never a torn file. Cross-process exclusion uses ``fcntl.flock``, which
the kernel releases when the holder dies: a ``kill -9`` cannot leave a lock
behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_file(directory: Path, prefix: str = "tmp-") -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file in ``directory`` that is removed unless the caller renamed it away."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
    path = Path(name)
    f = os.fdopen(fd, "wb")
    try:
        yield f, path
    finally:
        f.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def atomic_write_bytes(dest: Path, data: bytes, tmp_dir: Path, *, mode: int = 0o444) -> None:
    """Write ``data`` to ``dest`` atomically and durably (temp + fsync + rename)."""
    with temp_file(tmp_dir) as (f, tmp):
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    fsync_dir(dest.parent)


@contextlib.contextmanager
def flocked(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold ``flock`` on ``path`` (created if missing) for the ``with`` body."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
