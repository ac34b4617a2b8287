"""File trees as comparable snapshots, and the per-path comparison.

Every archive and image ends up here: a tar, a cpio, an unpacked ISO or
ext4 file system and a plain directory all become a :data:`Tree` (path ->
:class:`Entry`), so one function explains what changed per path: added,
removed, type, mode, owner, size, mtime, link target, device numbers,
extended attributes and content. File contents are kept as blobs on disk
(never whole archives in memory) and compared through the dispatcher, so a
nested archive or an ELF binary is explained by its own comparator.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from reprobuild.diff.context import Context, Probe
from reprobuild.diff.model import Difference
from reprobuild.tree import TarReader

__all__ = [
    "Entry",
    "Tree",
    "compare_trees",
    "describe",
    "show_path",
    "tree_from_cpio",
    "tree_from_directory",
    "tree_from_tar",
]

_CHUNK: Final = 1 << 20
_TAR_TYPES: Final = {
    b"0": "file",
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "char device",
    b"4": "block device",
    b"5": "directory",
    b"6": "fifo",
}


@dataclass(frozen=True)
class Entry:
    """What a tree says about one path; ``None`` where the source cannot know.

    (An unpacked ISO or ext4 image cannot say when a symlink was made, for
    instance: the unpacking tool sets that time, so it is not compared.)
    """

    type: str
    mode: int | None
    uid: int | None
    gid: int | None
    size: int
    mtime: int | None
    target: str = ""
    rdev: tuple[int, int] | None = None
    xattrs: tuple[tuple[str, bytes], ...] = ()
    blob: Path | None = None
    digest: str | None = None


Tree = Mapping[str, Entry]


def show_path(key: str) -> str:
    """A path key as printed: undecodable bytes as ``\\xNN``, the root as ``.``."""
    raw = key.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "backslashreplace") or "."


def _key(name: bytes) -> str:
    parts = [p for p in name.split(b"/") if p not in (b"", b".")]
    return b"/".join(parts).decode("utf-8", "surrogateescape")


class _BlobStore:
    """Regular-file contents by sha256 under one directory (deduplicated)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, read: _Reader, size: int) -> tuple[Path, str]:
        tmp = self.root / "incoming"
        digest = hashlib.sha256()
        left = size
        with open(tmp, "wb") as out:
            while left:
                chunk = read.read(min(left, _CHUNK))
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
        final = self.root / digest.hexdigest()
        if final.exists():
            tmp.unlink()
        else:
            tmp.rename(final)
        return final, digest.hexdigest()


class _Reader(Protocol):
    """Anything with ``read(n)`` (a tar member, a file)."""

    def read(self, n: int = -1, /) -> bytes: ...


def tree_from_tar(stream: BinaryIO, ctx: Context) -> dict[str, Entry]:
    """Read an uncompressed tar stream (ustar, GNU, pax) into a tree with blobs."""
    blobs = _BlobStore(ctx.scratch("tar-blobs"))
    tree: dict[str, Entry] = {}
    for member in TarReader(stream):
        kind = _TAR_TYPES.get(member.type, f"tar type {member.type.decode('ascii', 'replace')}")
        blob = digest = None
        if kind == "file":
            blob, digest = blobs.put(member, member.size)
        target = member.linkname
        if kind == "hardlink":
            target = _key(target).encode("utf-8", "surrogateescape")
        tree[_key(member.name)] = Entry(
            type=kind,
            mode=member.mode,
            uid=member.uid,
            gid=member.gid,
            size=member.size if kind == "file" else 0,
            mtime=member.mtime,
            target=target.decode("utf-8", "surrogateescape"),
            rdev=(member.devmajor, member.devminor) if kind.endswith("device") else None,
            xattrs=tuple(member.xattrs),
            blob=blob,
            digest=digest,
        )
    return tree


def _stat_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISCHR, "char device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "unknown"


def _walk(root: bytes, rel: bytes) -> Iterator[tuple[bytes, os.stat_result]]:
    with os.scandir(os.path.join(root, rel) if rel else root) as it:
        children = sorted(it, key=lambda e: e.name)
    for child in children:
        path = os.path.join(rel, child.name) if rel else child.name
        st = child.stat(follow_symlinks=False)
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, path)


def tree_from_directory(
    root: Path, *, include_root: bool = True, symlink_times: bool = True
) -> dict[str, Entry]:
    """Snapshot a directory without copying it (contents are compared in place).

    *include_root* is false for a directory a tool unpacked into: its own
    metadata is the scratch directory's, not the image's. *symlink_times* is
    false when the unpacking tool could not restore them.
    """
    broot = os.fsencode(root)
    items: list[tuple[bytes, os.stat_result]] = []
    if include_root:
        items.append((b"", os.lstat(broot)))
    items.extend(_walk(broot, b""))
    tree: dict[str, Entry] = {}
    for rel, st in items:
        full = os.path.join(broot, rel) if rel else broot
        kind = _stat_type(st.st_mode)
        try:
            names = sorted(os.listxattr(full, follow_symlinks=False))
            xattrs = tuple((n, os.getxattr(full, n, follow_symlinks=False)) for n in names)
        except OSError:
            xattrs = ()
        tree[_key(rel)] = Entry(
            type=kind,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            size=st.st_size if kind == "file" else 0,
            mtime=None if kind == "symlink" and not symlink_times else int(st.st_mtime),
            target=os.fsdecode(os.readlink(full)) if kind == "symlink" else "",
            rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)) if kind.endswith("device") else None,
            xattrs=xattrs,
            blob=Path(os.fsdecode(full)) if kind == "file" else None,
        )
    return tree


_NEWC_MAGIC: Final = (b"070701", b"070702")


def tree_from_cpio(stream: BinaryIO, ctx: Context) -> dict[str, Entry]:
    """Parse a newc (``070701``/``070702``) cpio archive, the initramfs format."""
    blobs = _BlobStore(ctx.scratch("cpio-blobs"))
    tree: dict[str, Entry] = {}
    offset = 0

    def read(n: int) -> bytes:
        nonlocal offset
        data = stream.read(n)
        if len(data) != n:
            raise ValueError("cpio archive is truncated")
        offset += n
        return data

    while True:
        header = read(110)
        if header[:6] not in _NEWC_MAGIC:
            raise ValueError(f"bad cpio header magic {header[:6]!r} at offset {offset - 110}")
        fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        _ino, mode, uid, gid, _nlink, mtime, size, _maj, _min, rmaj, rmin, namesize, _c = fields
        name = read(namesize)[:-1]
        read(-offset % 4)
        if name == b"TRAILER!!!":
            return tree
        kind = _stat_type(mode)
        blob = digest = None
        target = ""
        if kind == "file":
            blob, digest = blobs.put(_Counted(stream, size), size)
            offset += size
        elif size:
            data = read(size)
            if kind == "symlink":
                target = data.decode("utf-8", "surrogateescape")
        read(-offset % 4)
        tree[_key(name)] = Entry(
            type=kind,
            mode=stat.S_IMODE(mode),
            uid=uid,
            gid=gid,
            size=size if kind == "file" else 0,
            mtime=mtime,
            target=target,
            rdev=(rmaj, rmin) if kind.endswith("device") else None,
            blob=blob,
            digest=digest,
        )


class _Counted:
    def __init__(self, stream: BinaryIO, size: int) -> None:
        self.stream = stream
        self.left = size

    def read(self, n: int = -1, /) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.stream.read(n)
        if len(data) != n:
            raise ValueError("cpio member is truncated")
        self.left -= n
        return data


# --------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------


def _time(value: int | None) -> str:
    if value is None:
        return "?"
    try:
        return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(value)


def describe(entry: Entry) -> str:
    """A short description of an entry for added/removed lines."""
    if entry.type == "file":
        return f"file, {entry.size} bytes"
    if entry.type in ("symlink", "hardlink"):
        return f"{entry.type} -> {entry.target}"
    if entry.rdev is not None:
        return f"{entry.type} {entry.rdev[0]},{entry.rdev[1]}"
    return entry.type


def _same_content(a: Entry, b: Entry) -> bool:
    if a.digest is not None and b.digest is not None:
        return a.digest == b.digest
    if a.size != b.size or a.blob is None or b.blob is None:
        return a.size == b.size and a.blob == b.blob
    return filecmp.cmp(a.blob, b.blob, shallow=False)


def _metadata(a: Entry, b: Entry) -> list[str]:
    parts: list[str] = []
    if a.mode is not None and b.mode is not None and a.mode != b.mode:
        parts.append(f"mode {a.mode:04o} vs {b.mode:04o}")
    if (a.uid, a.gid) != (b.uid, b.gid) and None not in (a.uid, b.uid, a.gid, b.gid):
        parts.append(f"owner {a.uid}:{a.gid} vs {b.uid}:{b.gid}")
    if a.type == "file" and a.size != b.size:
        parts.append(f"size {a.size} vs {b.size}")
    if a.mtime is not None and b.mtime is not None and a.mtime != b.mtime:
        parts.append(f"mtime {_time(a.mtime)} vs {_time(b.mtime)}")
    if a.target != b.target:
        parts.append(f"link target {a.target!r} vs {b.target!r}")
    if a.rdev != b.rdev:
        parts.append(f"device {a.rdev} vs {b.rdev}")
    if a.xattrs != b.xattrs:
        names = sorted({n for n, _ in a.xattrs} ^ {n for n, _ in b.xattrs}) or sorted(
            n for (n, v) in set(a.xattrs) ^ set(b.xattrs)
        )
        parts.append(f"xattrs differ ({', '.join(dict.fromkeys(names))})")
    return parts


def _compare_entry(ctx: Context, path: str, a: Entry, b: Entry) -> Difference | None:
    shown = show_path(path)
    if a.type != b.type:
        return Difference(shown, "file", f"type changed: {describe(a)} vs {describe(b)}")
    parts = _metadata(a, b)
    content: Difference | None = None
    if a.type == "file" and not _same_content(a, b):
        assert a.blob is not None and b.blob is not None
        name = shown.rsplit("/", 1)[-1]
        content = ctx.compare(Probe.of(a.blob, name), Probe.of(b.blob, name), shown)
        if content is None:  # pragma: no cover - the bytes differ, so a comparator must say so
            content = Difference(shown, "binary", "content differs")
    if content is None:
        return Difference(shown, "file", ", ".join(parts)) if parts else None
    if not parts and content.is_container:
        return content.relabel(shown)
    summary = content.summary
    if content.is_container:
        summary = f"content differs ({content.kind}: {content.summary})"
    return Difference(
        shown,
        "file",
        ", ".join([summary, *parts]),
        unified_diff=content.unified_diff,
        children=content.children,
        comments=content.comments,
    )


def compare_trees(ctx: Context, a: Tree, b: Tree, label: str, kind: str) -> Difference | None:
    """Explain every path that differs between two trees, in sorted path order."""
    children: list[Difference] = []
    added = removed = changed = 0
    for path in sorted(a.keys() | b.keys(), key=lambda k: k.encode("utf-8", "surrogateescape")):
        ea, eb = a.get(path), b.get(path)
        if eb is None:
            assert ea is not None
            children.append(Difference(show_path(path), "file", f"removed ({describe(ea)})"))
            removed += 1
        elif ea is None:
            children.append(Difference(show_path(path), "file", f"added ({describe(eb)})"))
            added += 1
        else:
            diff = _compare_entry(ctx, path, ea, eb)
            if diff is not None:
                children.append(diff)
                changed += 1
    if not children:
        return None
    counts = [
        f"{n} {what}"
        for n, what in ((changed, "changed"), (added, "added"), (removed, "removed"))
        if n
    ]
    noun = "path differs" if len(children) == 1 else "paths differ"
    return Difference(
        label, kind, f"{len(children)} {noun} ({', '.join(counts)})", children=tuple(children)
    )
