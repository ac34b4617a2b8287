"""Small file-system primitives the store's crash safety rests on.

Every durable write goes temp file -> fsync -> rename -> fsync(directory), so
a reader (or a process killed half way) sees either the old state or the new
one, never a torn file. Cross-process exclusion uses ``fcntl.flock``, which
the kernel releases when the holder dies: a ``kill -9`` cannot leave a lock
behind.

Temp files made with ``lock=True`` are held under ``flock`` by their writer,
so :func:`remove_stale` can tell a dead writer's leftover (lockable) from a
live writer's file (locked) without ages or pids.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from reprobuild.errors import DiskFull

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


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
def no_space_named(where: Path | str, what: str) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT into a :class:`DiskFull` naming ``what`` and ``where``."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise DiskFull(
            f"No space left on device: cannot write {what} {where}",
            hint="free space on that file system (`reprobuild store gc` removes what no "
            "build references) and run the command again; nothing partial was kept",
        ) from None


def _mkstemp_locked(directory: Path, prefix: str) -> tuple[int, str]:
    """mkstemp, then flock; retried if a :func:`remove_stale` reaped it in between."""
    while True:
        fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(name).st_ino == os.fstat(fd).st_ino:
                return fd, name
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def temp_file(
    directory: Path, prefix: str = "tmp-", *, lock: bool = False
) -> Iterator[tuple[IO[bytes], Path]]:
    """A temp file in ``directory`` that is removed unless the caller renamed it away.

    With ``lock``, the file is flocked while open (see :func:`remove_stale`).
    """
    if lock:
        fd, name = _mkstemp_locked(directory, prefix)
    else:
        fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
    path = Path(name)
    f = os.fdopen(fd, "wb")
    try:
        yield f, path
    finally:
        try:
            f.close()  # may fail again (a full disk): the unlink must still happen
        finally:
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


def remove_stale(directory: Path, prefix: str) -> int:
    """Remove ``prefix*`` temp files that no live writer holds (a killed one's leftovers).

    Only for names made by :func:`temp_file` with ``lock=True``: a file nobody
    has flocked belongs to a dead process (the kernel dropped its lock).
    """
    removed = 0
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix)]
    except FileNotFoundError:
        return 0
    for name in names:
        path = Path(directory) / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
        finally:
            os.close(fd)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_writers(directory: Path, prefix: str, suffix: str = "") -> None:
    """Remove ``PREFIX<pid>SUFFIX`` temp files or trees whose writer is dead
    (a killed process's leftovers), so they never accumulate."""
    for entry in list(directory.glob(_glob_escape(prefix) + "*" + _glob_escape(suffix))):
        pid = entry.name[len(prefix) : len(entry.name) - len(suffix)]
        if pid.isdigit() and not _pid_alive(int(pid)):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def private_dir_name(parent: Path, prefix: str) -> Path:
    """``parent/PREFIX<pid>``, first removing such directories of dead processes
    (a killed writer's half-made tree)."""
    remove_dead_writers(parent, prefix)
    path = parent / f"{prefix}{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    return path


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


def swap_dir(new: Path, dest: Path, aside: Path) -> None:
    """Replace directory ``dest`` by ``new``: at every moment ``dest`` is the old
    whole tree, absent, or a new whole tree (never half deleted). Two writers
    racing both succeed; the last one's tree stays."""
    while True:
        with contextlib.suppress(FileNotFoundError):
            os.replace(dest, aside)
        try:
            os.replace(new, dest)
            break
        except OSError as exc:  # another writer's tree landed in between
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(dest.parent)


def release_frames(exc: BaseException) -> None:
    """Drop the locals of the finished frames an exception (and its causes) holds.

    When dulwich fails while inflating a pack object (a damaged or half-replaced
    pack), its frame still holds a memoryview slice of the pack's mmap; closing
    the repository during that exception's propagation then fails with
    BufferError ("cannot close exported pointers exist"), replacing the real error.
    """
    import traceback

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def close_repo(repo: Any, exc: BaseException | None = None) -> None:
    """Close a dulwich repository without letting BufferError replace ``exc``.

    With ``exc`` (the error in flight) its frames are released first; a view
    left in an uncollected traceback cycle is collected before a second try.
    """
    if exc is not None:
        release_frames(exc)
    try:
        repo.close()
    except BufferError:
        import gc

        gc.collect()
        repo.close()
