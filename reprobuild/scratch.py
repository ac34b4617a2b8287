"""Scratch space for trees: tmpfs when it fits (``REPROBUILD_TMPFS``).

Creating and removing thousands of files is what an image export spends
most of its time on when the tree is on a busy disk: extracting a 170 MB
root and removing it again took 25 s of a 38 s ISO export on this project's
shared build machine, against 1.3 s on tmpfs. Nothing of the tree's location
reaches an image (the exporters never pass it to a tool as anything but a
source), so where it lives is a pure speed choice:

``REPROBUILD_TMPFS``
    ``auto`` (the default): ``/dev/shm`` when it is a tmpfs and has room for
    the tree twice over while the machine keeps ample memory free (only for
    scratch of a known size: extracted exports); ``on``: ``/dev/shm`` for
    every tree, build trees of ``rootfs`` steps too (measured in
    ``bench/rootfs.py --tmpfs``); ``off``: always the disk (``TMPDIR``);
    or a directory to use instead of ``/dev/shm``.

Each process keeps its scratch under ``DIR/reprobuild-<pid>/``, removed when
it is done; one left by a killed process is removed by the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from reprobuild.errors import UsageError

SETTING: Final = "REPROBUILD_TMPFS"
SHM: Final = Path("/dev/shm")
_PREFIX: Final = "reprobuild-"
_MARGIN: Final = 256 << 20
_lock = threading.Lock()
_roots: dict[Path, Path] = {}


def _mode() -> str:
    value = os.environ.get(SETTING, "auto").strip()
    low = value.lower()
    if low in ("", "auto"):
        return "auto"
    if low in ("1", "on", "yes", "true"):
        return "on"
    if low in ("0", "off", "no", "false"):
        return "off"
    if not os.path.isabs(value):
        raise UsageError(
            f"{SETTING}={value!r}: expected auto, on, off or an absolute directory"
        )
    return value


def _is_tmpfs(path: Path) -> bool:
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return False
    best, kind = "", ""
    target = os.path.realpath(path)
    for fields in mounts:
        if len(fields) >= 3:
            point = fields[1].replace("\\040", " ")
            inside = target == point or target.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind == "tmpfs"


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def tmpfs_base(size: int | None, *, build_tree: bool = False) -> Path | None:
    """The directory to put *size* bytes of scratch in, or None for the disk.

    *size* None: unknown (``auto`` then says the disk). *build_tree*: a
    rootfs build tree, which only ``on`` or a directory put on tmpfs.
    """
    mode = _mode()
    if mode == "off" or (mode == "auto" and (size is None or build_tree)):
        return None
    base = SHM if mode in ("auto", "on") else Path(mode)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        if mode not in ("auto", "on"):
            raise UsageError(f"{SETTING}={mode}: not a writable directory")
        return None
    if mode == "auto":
        if not _is_tmpfs(base):
            return None
        need = 2 * (size or 0) + _MARGIN
        memory = _mem_available()
        if _free(base) < need or (memory is not None and memory < 4 * (size or 0) + 4 * _MARGIN):
            return None
    elif size is not None and _free(base) < size + _MARGIN:
        return None
    return base


def _process_root(base: Path) -> Path:
    with _lock:
        root = _roots.get(base)
        if root is None:
            from reprobuild.store._fs import remove_dead_writers

            remove_dead_writers(base, _PREFIX)
            root = base / f"{_PREFIX}{os.getpid()}"
            root.mkdir(mode=0o700, exist_ok=True)
            if not _roots:
                atexit.register(_remove_roots)
            _roots[base] = root
        return root


def _remove_roots() -> None:
    for root in _roots.values():
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(size: int | None, *, near: Path, build_tree: bool = False) -> Iterator[Path]:
    """A new private directory, removed afterwards: on tmpfs when :func:`tmpfs_base`
    allows, else in *near* (a directory on the disk the caller would use anyway)."""
    base = tmpfs_base(size, build_tree=build_tree)
    parent = _process_root(base) if base is not None else near
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="tree-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
