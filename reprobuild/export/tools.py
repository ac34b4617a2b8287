"""Shared plumbing for exporters that drive external image tools.

Every tool runs with an environment built here rather than inherited, so
neither the caller's ``TZ``, locale, ``SOURCE_DATE_EPOCH`` (mksquashfs refuses
it next to ``-mkfs-time``) nor a start-up file in ``$HOME`` can reach the
bytes it writes. Identifiers (file-system UUIDs, GPT GUIDs, hash seeds) come
from :func:`derive_uuid`: a pure function of the recipe-derived *seed* and a
purpose, so the same image always gets the same ones and two different images
never share them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from reprobuild.export.tar import ExportError
from reprobuild.tree import (
    SafeRoot,
    TarEntry,
    TarReader,
    TreeError,
    UnsafePathError,
    member_parts,
    read_canonical_tar,
)

__all__ = [
    "ExtractedTree",
    "NotImplementedYet",
    "ToolFailed",
    "ToolMissing",
    "derive_uuid",
    "extracted",
    "extracted_tree",
    "iter_canonical_tar",
    "parse_size",
    "read_inside",
    "regular_inside",
    "require_tool",
    "run_tool",
    "sha256_file",
    "staged_output",
    "tool_env",
    "tool_version",
]

_NAMESPACE: Final = uuid.UUID("5b0f3a52-6c1e-4f0e-9a57-1f1f6e1d0c42")
_SBIN: Final = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_CHUNK: Final = 4 << 20
_PACKAGES: Final = {
    "xorriso": "xorriso",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "e2fsck": "e2fsprogs",
    "mksquashfs": "squashfs-tools",
    "unsquashfs": "squashfs-tools",
    "mkfs.erofs": "erofs-utils",
    "dump.erofs": "erofs-utils",
    "fsck.erofs": "erofs-utils",
    "sfdisk": "fdisk",
    "qemu-img": "qemu-utils",
    "cpio": "cpio",
}


class ToolMissing(ExportError):
    """An external program an exporter needs is not installed."""


class ToolFailed(ExportError):
    """An external program exited with an error."""


class NotImplementedYet(ExportError):
    """A requested export option exists in the design but is not built yet."""


def _search_path() -> str:
    parts = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p]
    parts += [p for p in _SBIN if p not in parts]
    return os.pathsep.join(parts)


def require_tool(name: str) -> str:
    """Absolute path of *name*, or :class:`ToolMissing` naming the Debian package."""
    found = shutil.which(name, path=_search_path())
    if found is None:
        package = _PACKAGES.get(name, name)
        raise ToolMissing(
            f"{name} is not installed (needed to write this image)",
            hint=f"apt-get install {package}",
        )
    return found


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal, fixed environment: UTC, C.UTF-8, no home, no SOURCE_DATE_EPOCH."""
    env = {
        "PATH": _search_path(),
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "HOME": "/nonexistent",
    }
    if extra:
        env.update(extra)
    return env


def run_tool(
    argv: Sequence[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run *argv* (first element looked up with :func:`require_tool`); raise on failure."""
    exe = require_tool(argv[0])
    try:
        proc = subprocess.run(
            [exe, *argv[1:]],
            input=stdin,
            capture_output=True,
            env=tool_env(env),
            cwd=cwd,
            check=False,
        )
    except OSError as exc:
        raise ToolFailed(f"{what}: cannot run {argv[0]}: {exc.strerror}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-2000:]
        from reprobuild.oserrors import fullest, mentions_no_space

        if mentions_no_space(tail):
            from reprobuild.errors import DiskFull

            place = fullest(
                [p for p in (cwd, *argv[1:]) if isinstance(p, Path | str) and "/" in str(p)]
                or [tempfile.gettempdir()]
            )
            raise DiskFull(
                f"No space left on device: cannot write {place} ({what}: {argv[0]} says: "
                f"{tail.splitlines()[-1][:200]})",
                hint="free space on that file system (TMPDIR moves temporary trees "
                "elsewhere) and run the command again; nothing partial was kept",
            )
        raise ToolFailed(f"{what}: {argv[0]} exited with status {proc.returncode}:\n{tail}")
    return proc


@cache
def tool_version(name: str) -> str:
    """First line a tool prints about its version, for step keys (DESIGN.md section 7)."""
    flags = {
        "mkfs.ext4": ["-V"],
        "debugfs": ["-V"],
        "mksquashfs": ["-version"],
        "dump.erofs": ["-V"],
    }
    argv = [name, *flags.get(name, ["--version"])]
    if name == "mkfs.erofs":  # 1.5 has no version flag; dump.erofs ships alongside
        require_tool(name)
        return "mkfs.erofs " + tool_version("dump.erofs").removeprefix("dump.erofs ")
    proc = subprocess.run(
        [require_tool(name), *argv[1:]], capture_output=True, env=tool_env(), check=False
    )
    for line in (proc.stdout + proc.stderr).decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return f"{name} (unknown version)"


def derive_uuid(seed: str, purpose: str) -> uuid.UUID:
    """A UUID that depends only on *seed* and *purpose* (uuid5 in a fixed namespace)."""
    if not seed:
        raise ExportError("an image seed must not be empty (derive it from the step key)")
    return uuid.uuid5(_NAMESPACE, f"{purpose}\0{seed}")


_SIZE_RE: Final = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B)?\s*$", re.IGNORECASE)
_UNITS: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(size: str | int) -> int:
    """``"512M"``, ``"2G"``, ``"2GiB"`` or a byte count: binary units, as mkosi and qemu-img."""
    if isinstance(size, int):
        value = size
    else:
        match = _SIZE_RE.match(size)
        if match is None:
            raise ExportError(f"cannot read size {size!r} (use e.g. 512M, 2G or a byte count)")
        value = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if value <= 0:
        raise ExportError(f"size must be positive (got {size!r})")
    return value


_ZEROS: Final = bytes(_CHUNK)


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks (disk images do not fit in memory).

    Holes (a disk image is mostly holes) are hashed as zeros without being read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: a hole up to the end (or no SEEK_DATA: read)
                data = size if _has_seek_data(fd) else pos
            while pos < data:  # the hole [pos, data)
                n = min(_CHUNK, data - pos)
                digest.update(_ZEROS if n == _CHUNK else _ZEROS[:n])
                pos += n
            if pos >= size:
                break
            try:
                end = os.lseek(fd, pos, os.SEEK_HOLE)
            except OSError:
                end = size
            handle.seek(pos)
            while pos < end:
                chunk = handle.read(min(_CHUNK, end - pos))
                if not chunk:
                    raise ExportError(f"{path} shrank while being hashed")
                digest.update(chunk)
                pos += len(chunk)
    return "sha256:" + digest.hexdigest()


def _has_seek_data(fd: int) -> bool:
    try:
        os.lseek(fd, 0, os.SEEK_HOLE)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def staged_output(dest: Path) -> Iterator[tuple[Path, Path]]:
    """(scratch directory, temporary output path) next to *dest*; renamed over it on success.

    The scratch directory sits beside *dest* (one file system, so the rename
    is atomic and large trees do not fill ``/tmp``) and is removed in all
    cases. Its path never reaches an image: tools get it only as a source.
    """
    parent = dest.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
    try:
        out = work / "output"
        yield work, out
        if not out.exists():
            raise ExportError(f"internal error: no output was written for {dest}")
        os.chmod(out, 0o644)
        os.replace(out, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def extracted_tree(canonical_tar: Path, root: Path) -> int:
    """Extract *canonical_tar* into the new directory *root* (as root: owners kept)."""
    with open(canonical_tar, "rb") as stream:
        return read_canonical_tar(stream, root)


@dataclass(frozen=True)
class ExtractedTree:
    """A canonical tar extracted into a scratch directory, and its members.

    *members*: (path inside the tree without ``./`` or trailing ``/``, entry)
    in tar order, the root as ``b""``; what :func:`iter_canonical_tar` would
    yield, kept so an exporter need not read the tar again.
    """

    root: Path
    members: tuple[tuple[bytes, TarEntry], ...]


@contextlib.contextmanager
def extracted(canonical_tar: Path, near: Path) -> Iterator[ExtractedTree]:
    """Extract *canonical_tar* into scratch space (tmpfs when it fits, see
    :mod:`reprobuild.scratch`; else a directory in *near*), removed afterwards.

    A tmpfs that fills up meanwhile (other processes use it too) is not an
    error: the tree is extracted again on the disk.
    """
    from reprobuild.errors import DiskFull
    from reprobuild.scratch import scratch_dir, tmpfs_base

    size = os.stat(canonical_tar).st_size
    on_tmpfs = tmpfs_base(size) is not None
    with contextlib.ExitStack() as first:
        try:
            scratch = first.enter_context(scratch_dir(size, near=near))
            tree = _extract_into(canonical_tar, scratch / "tree")
        except (DiskFull, OSError) as exc:
            no_space = isinstance(exc, DiskFull) or exc.errno in (errno.ENOSPC, errno.EDQUOT)
            if not no_space or not on_tmpfs:
                raise
            first.close()
            with scratch_dir(None, near=near) as scratch:
                yield _extract_into(canonical_tar, scratch / "tree")
            return
        yield tree


def _extract_into(canonical_tar: Path, root: Path) -> ExtractedTree:
    listing: list[tuple[bytes, TarEntry]] = []
    with open(canonical_tar, "rb") as stream:
        read_canonical_tar(stream, root, listing=listing)
    return ExtractedTree(root, tuple(listing))


def iter_canonical_tar(canonical_tar: Path) -> Iterator[tuple[bytes, TarEntry]]:
    """(path inside the tree, without ``./`` or trailing ``/``; entry) in tar order.

    The root is ``b""``. Entry data can be read while iterating.
    """
    with open(canonical_tar, "rb") as stream:
        for entry in TarReader(stream):
            name = entry.name
            if name.startswith(b"./"):
                name = name[2:]
            yield name.strip(b"/"), entry


def _open_inside(root: Path, path: str, what: str) -> int | None:
    """A descriptor of the regular file *path* resolved inside *root* as the
    image will resolve it (absolute links restart at *root*, ``..`` never
    climbs above it), or None when it is missing. Refuses a path whose links
    lead out of *root* and anything that is not a regular file (a device, a
    FIFO, a directory), so no byte of the host is ever read through a tree."""
    parts = member_parts(path.lstrip("/"), context=what)
    try:
        with SafeRoot(root) as safe:
            stack, st = safe.resolve(parts, follow_last=True, context=what)
            if st is None:
                return None
            if not stat.S_ISREG(st.st_mode):
                raise ExportError(f"{what} {path} in the tree is not a regular file")
            rel = b"/".join(stack)
            fd = os.open(rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=safe.fd)
    except UnsafePathError as exc:
        raise ExportError(f"{what} {path} leads out of the tree: {exc.message}") from None
    except TreeError:
        return None
    except OSError as exc:
        raise ExportError(f"{what} {path}: cannot open it in the tree: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since it was resolved
        os.close(fd)
        raise ExportError(f"{what} {path} in the tree is not a regular file")
    return fd


def regular_inside(root: Path, path: str, what: str = "file") -> bool:
    """Whether *path* is a regular file of the tree at *root* (links resolved inside it)."""
    try:
        fd = _open_inside(root, path, what)
    except ExportError:
        return False
    if fd is None:
        return False
    os.close(fd)
    return True


def read_inside(root: Path, path: str, *, what: str, limit: int) -> bytes:
    """The bytes of the regular file *path* of the tree at *root*, at most *limit* of them.

    Missing, not regular, leading out of the tree or larger than *limit*:
    an :class:`ExportError` naming *what*.
    """
    fd = _open_inside(root, path, what)
    if fd is None:
        raise ExportError(f"{what} {path} is not in the tree")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ExportError(f"{what} {path} is larger than the {limit} bytes it may have")
    return data
