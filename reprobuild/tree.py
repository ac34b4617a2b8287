"""File trees between steps: safe extraction, the canonical tar, normalisation.

A step hands its output tree to the next step as a *canonical tar*: one byte
stream that depends only on the tree's content and metadata, never on the
umask, ``TZ``, locale, directory listing order, inode numbers or the path the
tree was built in. Its sha256 (:func:`tree_digest`) names the tree.

Format (version :data:`CANONICAL_TAR_VERSION`), defined precisely so that
another implementation can reproduce it byte for byte:

* **POSIX pax** (ustar headers, ``x`` extended headers only where needed).
  Pax, because ustar alone cannot hold names over 100 bytes, sizes of 8 GiB
  and more, ids above 2,097,151, or extended attributes (``SCHILY.xattr.*``,
  which GNU tar and bsdtar both read); GNU's own ``L``/``K`` records would
  cover only the names. Extended headers are named ``././@PaxHeader`` with
  mode 0644, ids 0 and mtime 0, their records sorted by key; ``hdrcharset=
  BINARY`` is added when a path is not UTF-8.
* **Order**: GNU ``tar --sort=name``: depth-first pre-order, the entries of
  each directory sorted by the bytes of their names. A directory therefore
  always precedes its contents. The tree root is the first member, ``./``.
* **Names**: ``./`` + path, directories with a trailing ``/``.
* **Owners**: numeric uid/gid as in the tree; ``uname``/``gname`` are empty.
  Names would have to be looked up in *some* passwd file: the build host's
  would leak into the output, and the image's own is what gives the numbers
  meaning anyway.
* **Times**: mtime is ``min(mtime, epoch)`` (whole seconds, never below 0);
  no atime or ctime anywhere.
* **Modes**: the 12 permission bits (setuid, setgid, sticky included).
* **Hard links**: for non-directories with more than one link, the first
  path in the order above is stored as the file, later ones as type ``1``.
* **Types**: files, directories, symlinks, hard links, character and block
  devices, FIFOs. A socket is an error (it cannot be archived).
* **Extended attributes**: only those in :data:`XATTRS_KEPT`
  (``security.capability``, POSIX ACLs). ``security.selinux`` and
  ``trusted.*``/``security.ima`` are labels of the build host or the build
  file system, not of the image.
* The stream ends with two zero blocks, padded to a 10240-byte record, as
  GNU tar and Python's tarfile do.

Extraction, here and for ``.deb`` packages (:mod:`reprobuild.archives.debian.unpack`),
goes through :class:`SafeRoot`, which resolves every path inside the root
like a chroot would and refuses any that would leave it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, Protocol

from reprobuild.errors import ArchiveError, ReprobuildError

__all__ = [
    "CANONICAL_TAR_VERSION",
    "XATTRS_KEPT",
    "PrivilegeError",
    "SafeRoot",
    "TreeError",
    "UnsafePathError",
    "member_parts",
    "read_canonical_tar",
    "tree_digest",
    "write_canonical_tar",
]

CANONICAL_TAR_VERSION: Final = 1
XATTRS_KEPT: Final = frozenset(
    {"security.capability", "system.posix_acl_access", "system.posix_acl_default"}
)

_BLOCK: Final = 512
_RECORD: Final = 20 * _BLOCK
_CHUNK: Final = 1 << 20
_MAX_SYMLINK_HOPS: Final = 40
_MAX_META: Final = 1 << 20  # largest long-name or pax header read (GNU tar's are < 64 KiB)
_TMP_NAME: Final = b".reprobuild-tmp~"


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class TreeError(ReprobuildError):
    """A file tree cannot be read, written or extracted as asked."""


class UnsafePathError(ArchiveError):
    """An archive member would land outside the tree it is extracted into."""


class PrivilegeError(ReprobuildError):
    """An operation needs a privilege (CAP_CHOWN, CAP_MKNOD) this process lacks."""


def member_parts(name: str | bytes, *, context: str) -> tuple[bytes, ...]:
    """Split an archive member name into path components, refusing unsafe ones.

    Leading ``./`` and empty or ``.`` components are dropped (so ``./`` is
    the root, ``()``); absolute names and any ``..`` component are refused
    rather than reinterpreted, because an archive that contains them is
    either broken or hostile.
    """
    raw = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else name
    if raw.startswith(b"/"):
        raise UnsafePathError(f"{context}: member {_show(raw)} has an absolute path")
    if b"\n" in raw or b"\0" in raw:
        raise UnsafePathError(f"{context}: member {_show(raw)} has a newline or NUL in its name")
    parts = tuple(p for p in raw.split(b"/") if p not in (b"", b"."))
    if b".." in parts:
        raise UnsafePathError(f"{context}: member {_show(raw)} contains '..'")
    return parts


def _show(path: bytes | Sequence[bytes]) -> str:
    if not isinstance(path, bytes):
        path = b"/".join(path)
    return repr(path.decode("utf-8", "backslashreplace"))


def join_parts(parts: Sequence[bytes]) -> bytes:
    return b"/".join(parts) if parts else b"."


# --------------------------------------------------------------------------
# Safe operations inside a root directory
# --------------------------------------------------------------------------


@dataclass
class _PendingTimes:
    path: bytes
    mtime: int


@dataclass
class SafeRoot:
    """A directory opened as the root of a tree; every path stays inside it.

    Paths are resolved component by component with ``lstat``; a symlink met
    on the way is followed *inside the root*: an absolute target restarts at
    the root (as under ``chroot``) and a ``..`` above the root is refused.
    All later system calls use the resolved path relative to a directory
    descriptor of the root, and the resolved path contains no symlinks, so
    nothing is written through a link that leaves the tree. (This assumes no
    other process changes the tree at the same time, which holds for a build
    tree.) The final component is never followed when something is created.
    """

    root: Path
    fd: int = field(init=False)
    _dir_times: list[_PendingTimes] = field(init=False, default_factory=list)
    _parents: dict[tuple[bytes, ...], bytes] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        try:
            self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise TreeError(f"cannot open tree root {self.root}: {exc.strerror}") from exc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SafeRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- resolution ----------------------------------------------------------

    def resolve(
        self, parts: Sequence[bytes], *, follow_last: bool, context: str
    ) -> tuple[tuple[bytes, ...], os.stat_result | None]:
        """Resolve *parts* inside the root: (physical components, lstat or None).

        Intermediate components must exist and be directories (after
        following symlinks inside the root). A missing last component gives
        ``None``. Raises :class:`UnsafePathError` on escape or a symlink loop.
        """
        stack: list[bytes] = []
        todo: list[bytes] = [p for p in reversed(parts) if p not in (b"", b".")]
        hops = 0
        st: os.stat_result | None = os.fstat(self.fd)
        while todo:
            comp = todo.pop()
            if comp == b"..":
                if not stack:
                    raise UnsafePathError(
                        f"{context}: {_show(parts)} resolves outside the tree (through '..')"
                    )
                stack.pop()
                st = os.lstat(join_parts(stack), dir_fd=self.fd)
                continue
            path = join_parts([*stack, comp])
            try:
                st = os.lstat(path, dir_fd=self.fd)
            except FileNotFoundError:
                if todo:
                    raise TreeError(
                        f"{context}: parent directory {_show([*stack, comp])} of "
                        f"{_show(parts)} does not exist"
                    ) from None
                return (*stack, comp), None
            except NotADirectoryError:
                raise TreeError(
                    f"{context}: {_show(stack)} is not a directory (in {_show(parts)})"
                ) from None
            if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise UnsafePathError(f"{context}: too many symlinks resolving {_show(parts)}")
                target = os.readlink(path, dir_fd=self.fd)
                if target.startswith(b"/"):
                    stack = []
                todo.extend(p for p in reversed(target.split(b"/")) if p not in (b"", b"."))
                continue
            if todo and not stat.S_ISDIR(st.st_mode):
                raise TreeError(f"{context}: {_show(path)} is not a directory (in {_show(parts)})")
            stack.append(comp)
        return tuple(stack), st

    def parent(self, parts: Sequence[bytes], *, context: str) -> tuple[bytes, bytes]:
        """The physical directory holding *parts* and the final name."""
        if not parts:
            raise TreeError(f"{context}: the tree root has no parent")
        key = tuple(parts[:-1])
        cached = self._parents.get(key)
        if cached is not None:
            return cached, parts[-1]
        stack, st = self.resolve(key, follow_last=True, context=context)
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise TreeError(f"{context}: parent of {_show(parts)} is missing or not a directory")
        self._parents[key] = physical = join_parts(stack)
        return physical, parts[-1]

    def forget(self) -> None:
        """Drop cached resolutions (after a symlink or directory went away).

        The cache holds only directories reached through real directories
        and symlinks; it stays valid while no existing symlink or directory
        is replaced or removed, which every such operation here reports.
        """
        self._parents.clear()

    @staticmethod
    def child(parent: bytes, name: bytes) -> bytes:
        return name if parent == b"." else parent + b"/" + name

    def lstat(self, path: bytes) -> os.stat_result | None:
        try:
            return os.lstat(path, dir_fd=self.fd)
        except FileNotFoundError:
            return None

    def resolves_to_dir(self, parts: Sequence[bytes], *, context: str) -> os.stat_result | None:
        """stat() of *parts* if it resolves (inside the root) to a directory."""
        try:
            _, st = self.resolve(parts, follow_last=True, context=context)
        except TreeError:
            return None
        return st if st is not None and stat.S_ISDIR(st.st_mode) else None

    # -- creation ------------------------------------------------------------

    def chown(self, path: bytes | int, uid: int, gid: int, context: str) -> None:
        """chown a descriptor or a path (not following it), naming CAP_CHOWN on EPERM."""
        try:
            if isinstance(path, int):
                os.fchown(path, uid, gid)
            else:
                os.chown(path, uid, gid, dir_fd=self.fd, follow_symlinks=False)
        except PermissionError as exc:
            raise PrivilegeError(
                f"{context}: setting owner {uid}:{gid} needs the CAP_CHOWN privilege",
                hint="run as root (or inside a user namespace that maps these ids)",
            ) from exc

    def _clear_tmp(self, tmp: bytes) -> None:
        st = self.lstat(tmp)
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise TreeError(f"a directory is in the way of {_show(tmp)}")
            os.unlink(tmp, dir_fd=self.fd)

    def _place(self, tmp: bytes, final: bytes, *, context: str) -> None:
        """Move *tmp* over *final*, which must not be a directory."""
        st = self.lstat(final)
        if st is not None and stat.S_ISDIR(st.st_mode):
            os.unlink(tmp, dir_fd=self.fd)
            raise TreeError(
                f"{context}: would replace directory {_show(final)} with a non-directory"
            )
        if st is not None and stat.S_ISLNK(st.st_mode):
            self.forget()
        os.rename(tmp, final, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def make_dir(
        self, parts: Sequence[bytes], *, mode: int, uid: int, gid: int, mtime: int, context: str
    ) -> bool:
        """Create a directory unless one (or a symlink to one) is already there.

        Like dpkg, an existing directory keeps its mode, owner and mtime, and
        a symlink that resolves to a directory inside the tree counts as one
        (this is how merged-/usr works). Anything else in the way is replaced.
        Returns True if a directory was created.
        """
        if not parts:
            return False
        parent, name = self.parent(parts, context=context)
        path = self.child(parent, name)
        st = self.lstat(path)
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                return False
            if stat.S_ISLNK(st.st_mode):
                _, target = self.resolve(parts, follow_last=True, context=context)
                if target is not None and stat.S_ISDIR(target.st_mode):
                    return False
            os.unlink(path, dir_fd=self.fd)
            self.forget()
        os.mkdir(path, 0o700, dir_fd=self.fd)
        dfd = os.open(
            path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd
        )
        try:
            self.chown(dfd, uid, gid, context)
            os.fchmod(dfd, mode & 0o7777)
        finally:
            os.close(dfd)
        self._dir_times.append(_PendingTimes(path, mtime))
        return True

    def write_file(
        self,
        parts: Sequence[bytes],
        source: _Readable,
        size: int,
        *,
        mode: int,
        uid: int,
        gid: int,
        mtime: int,
        context: str,
        suffix: bytes = b"",
        xattrs: Sequence[tuple[str, bytes]] = (),
        want_md5: bool = True,
    ) -> tuple[bytes, bytes | None]:
        """Write a regular file atomically; return (physical path, md5 hex digest).

        The file is created with mode 0 (nobody can use it before the final
        mode is set), then owner and mode are set in that order (chown clears
        setuid bits). Replacing an existing entry goes through a temporary
        name renamed into place, so the old one stays whole until then.
        """
        parent, name = self.parent(parts, context=context)
        final = self.child(parent, name + suffix)
        digest = hashlib.md5() if want_md5 else None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            # Nothing there (the common case): create the file itself, mode 0
            # until it is complete; no temporary name, no rename.
            fd = os.open(final, flags, 0, dir_fd=self.fd)
            tmp = final
        except FileExistsError:
            tmp = self.child(parent, _TMP_NAME)
            self._clear_tmp(tmp)
            fd = os.open(tmp, flags, 0, dir_fd=self.fd)
        try:
            remaining = size
            while remaining:
                chunk = source.read(min(remaining, _CHUNK))
                if not chunk:
                    raise ArchiveError(f"{context}: data of {_show(parts)} is truncated")
                if digest is not None:
                    digest.update(chunk)
                _write_all(fd, chunk)
                remaining -= len(chunk)
            self.chown(fd, uid, gid, context)
            os.fchmod(fd, mode & 0o7777)
            for key, value in xattrs:
                os.setxattr(fd, key, value)
            os.utime(fd, ns=(mtime * 1_000_000_000, mtime * 1_000_000_000))
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=self.fd)
            raise
        os.close(fd)
        if tmp != final:
            self._place(tmp, final, context=context)
        return final, None if digest is None else digest.hexdigest().encode()

    def make_symlink(
        self, parts: Sequence[bytes], target: bytes, *, uid: int, gid: int, mtime: int, context: str
    ) -> bool:
        """Create a symlink; like dpkg, keep an existing directory (or a
        symlink to the same directory) instead. Returns True if created."""
        parent, name = self.parent(parts, context=context)
        path = self.child(parent, name)
        st = self.lstat(path)
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                return False
            if stat.S_ISLNK(st.st_mode):
                old = self.resolves_to_dir(parts, context=context)
                base = list(parts[:-1]) if not target.startswith(b"/") else []
                new = self.resolves_to_dir([*base, *target.split(b"/")], context=context)
                if (
                    old is not None
                    and new is not None
                    and (old.st_dev, old.st_ino)
                    == (
                        new.st_dev,
                        new.st_ino,
                    )
                ):
                    return False
        tmp = self.child(parent, _TMP_NAME)
        self._clear_tmp(tmp)
        os.symlink(target, tmp, dir_fd=self.fd)
        try:
            self.chown(tmp, uid, gid, context)
            os.utime(tmp, ns=(mtime * 10**9, mtime * 10**9), dir_fd=self.fd, follow_symlinks=False)
        except BaseException:
            os.unlink(tmp, dir_fd=self.fd)
            raise
        self._place(tmp, path, context=context)
        return True

    def make_hardlink(self, parts: Sequence[bytes], source: bytes, *, context: str) -> bytes:
        """Hard-link *source* (a physical path from an earlier member) at *parts*."""
        parent, name = self.parent(parts, context=context)
        path = self.child(parent, name)
        tmp = self.child(parent, _TMP_NAME)
        self._clear_tmp(tmp)
        os.link(source, tmp, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        self._place(tmp, path, context=context)
        return path

    def make_node(
        self,
        parts: Sequence[bytes],
        *,
        kind: int,
        device: int,
        mode: int,
        uid: int,
        gid: int,
        mtime: int,
        context: str,
        xattrs: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Create a character/block device (needs CAP_MKNOD) or a FIFO."""
        parent, name = self.parent(parts, context=context)
        path = self.child(parent, name)
        tmp = self.child(parent, _TMP_NAME)
        self._clear_tmp(tmp)
        try:
            if kind == stat.S_IFIFO:
                os.mkfifo(tmp, 0, dir_fd=self.fd)
            else:
                os.mknod(tmp, kind, device, dir_fd=self.fd)
        except PermissionError as exc:
            raise PrivilegeError(
                f"{context}: creating device node {_show(parts)} needs the CAP_MKNOD privilege",
                hint="run as root (device nodes cannot be created in a user namespace)",
            ) from exc
        try:
            self.chown(tmp, uid, gid, context)
            # The final component is the node just made by us, never a symlink.
            os.chmod(tmp, mode & 0o7777, dir_fd=self.fd)
            for key, value in xattrs:
                os.setxattr(_proc_path(self.fd, tmp), key, value, follow_symlinks=False)
            os.utime(tmp, ns=(mtime * 10**9, mtime * 10**9), dir_fd=self.fd, follow_symlinks=False)
        except BaseException:
            os.unlink(tmp, dir_fd=self.fd)
            raise
        self._place(tmp, path, context=context)

    def set_dir_xattrs(self, path: bytes, xattrs: Sequence[tuple[str, bytes]]) -> None:
        for key, value in xattrs:
            os.setxattr(_proc_path(self.fd, path), key, value, follow_symlinks=False)

    def discard_dir_times(self) -> None:
        """Leave the directories created so far with the current time."""
        self._dir_times.clear()

    def finish_dir_times(self) -> None:
        """Give the directories created so far their archive mtimes.

        Done last because creating entries inside a directory changes its
        mtime; setting a directory's time does not touch its parent's.
        """
        for pending in reversed(self._dir_times):
            ns = pending.mtime * 1_000_000_000
            os.utime(pending.path, ns=(ns, ns), dir_fd=self.fd, follow_symlinks=False)
        self._dir_times.clear()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _proc_path(dir_fd: int, path: bytes) -> bytes:
    return b"/proc/self/fd/%d/%s" % (dir_fd, path)


# --------------------------------------------------------------------------
# Writing the canonical tar
# --------------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _pax_record(key: bytes, value: bytes) -> bytes:
    payload = b" " + key + b"=" + value + b"\n"
    length = len(payload) + 1
    while len(str(length)) + len(payload) != length:
        length = len(str(length)) + len(payload)
    return str(length).encode() + payload


def _ustar(
    name: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes:
    header = b"".join(
        (
            name.ljust(100, b"\0"),
            _octal(mode, 8),
            _octal(uid, 8),
            _octal(gid, 8),
            _octal(size, 12),
            _octal(mtime, 12),
            b" " * 8,
            typeflag,
            linkname.ljust(100, b"\0"),
            b"ustar\x0000",
            b"\0" * 32,
            b"\0" * 32,
            _octal(devmajor, 8),
            _octal(devminor, 8),
            b"\0" * 155,
            b"\0" * 12,
        )
    )
    checksum = b"%06o\0 " % sum(header)
    return header[:148] + checksum + header[156:]


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def tar_header(
    name: bytes,
    *,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    xattrs: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """A member header, preceded by a pax extended header when ustar falls short."""
    records: dict[bytes, bytes] = {}
    if len(name) > 100:
        records[b"path"] = name
        name = name[:100]
    if len(linkname) > 100:
        records[b"linkpath"] = linkname
        linkname = linkname[:100]
    if uid > 0o7777777:
        records[b"uid"] = str(uid).encode()
        uid = 0
    if gid > 0o7777777:
        records[b"gid"] = str(gid).encode()
        gid = 0
    if size > 0o77777777777:
        records[b"size"] = str(size).encode()
        size = 0
    for key, value in xattrs:
        records[b"SCHILY.xattr." + key.encode()] = value
    for path_key in (b"path", b"linkpath"):
        if path_key in records:
            try:
                records[path_key].decode("utf-8")
            except UnicodeDecodeError:
                records[b"hdrcharset"] = b"BINARY"
    out = b""
    if records:
        data = b"".join(_pax_record(k, records[k]) for k in sorted(records))
        out = (
            _ustar(
                b"././@PaxHeader", mode=0o644, uid=0, gid=0, size=len(data), mtime=0, typeflag=b"x"
            )
            + data
            + _padding(len(data))
        )
    return out + _ustar(
        name,
        mode=mode,
        uid=uid,
        gid=gid,
        size=size,
        mtime=mtime,
        typeflag=typeflag,
        linkname=linkname,
        devmajor=devmajor,
        devminor=devminor,
    )


def _read_xattrs(dir_fd: int, name: bytes) -> list[tuple[str, bytes]]:
    path = _proc_path(dir_fd, name)
    try:
        keys = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return []
        raise
    kept = sorted(k for k in keys if k in XATTRS_KEPT)
    return [(k, os.getxattr(path, k, follow_symlinks=False)) for k in kept]


class Writable(Protocol):
    """Anything with ``write(bytes)``: a file, a hash, a compressor."""

    def write(self, data: bytes, /) -> object: ...


class _Writer:
    def __init__(self, out: Writable, epoch: int | None) -> None:
        self.out = out
        self.epoch = epoch
        self.written = 0
        self.links: dict[tuple[int, int], bytes] = {}

    def emit(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)

    def mtime(self, st: os.stat_result) -> int:
        value = max(0, int(st.st_mtime_ns // 1_000_000_000))
        return value if self.epoch is None else min(value, self.epoch)

    def entry(self, dir_fd: int, name: bytes, arcname: bytes, st: os.stat_result) -> None:
        mode = stat.S_IMODE(st.st_mode)
        mtime = self.mtime(st)

        def header(
            typeflag: bytes,
            *,
            size: int = 0,
            linkname: bytes = b"",
            xattrs: Sequence[tuple[str, bytes]] = (),
            devmajor: int = 0,
            devminor: int = 0,
        ) -> bytes:
            return tar_header(
                arcname,
                mode=mode,
                uid=st.st_uid,
                gid=st.st_gid,
                mtime=mtime,
                size=size,
                typeflag=typeflag,
                linkname=linkname,
                xattrs=xattrs,
                devmajor=devmajor,
                devminor=devminor,
            )

        fmt = stat.S_IFMT(st.st_mode)
        if fmt != stat.S_IFDIR and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                self.emit(header(b"1", linkname=first))
                return
            self.links[key] = arcname
        if fmt == stat.S_IFREG:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                xattrs = _read_xattrs(dir_fd, name)
                self.emit(header(b"0", size=st.st_size, xattrs=xattrs))
                remaining = st.st_size
                while remaining:
                    chunk = os.read(fd, min(remaining, _CHUNK))
                    if not chunk:
                        raise TreeError(f"{_show(arcname)} shrank while being archived")
                    self.emit(chunk)
                    remaining -= len(chunk)
                if os.read(fd, 1):
                    raise TreeError(f"{_show(arcname)} grew while being archived")
            finally:
                os.close(fd)
            self.emit(_padding(st.st_size))
        elif fmt == stat.S_IFDIR:
            xattrs = _read_xattrs(dir_fd, name)
            self.emit(header(b"5", xattrs=xattrs))
        elif fmt == stat.S_IFLNK:
            target = os.readlink(name, dir_fd=dir_fd)
            self.emit(header(b"2", linkname=target))
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            self.emit(
                header(
                    b"3" if fmt == stat.S_IFCHR else b"4",
                    devmajor=os.major(st.st_rdev),
                    devminor=os.minor(st.st_rdev),
                    xattrs=_read_xattrs(dir_fd, name),
                )
            )
        elif fmt == stat.S_IFIFO:
            xattrs = _read_xattrs(dir_fd, name)
            self.emit(header(b"6", xattrs=xattrs))
        else:
            raise TreeError(
                f"{_show(arcname)} is a socket or unknown file type; it cannot be archived"
            )

    def walk(self, dir_fd: int, prefix: bytes) -> None:
        with os.scandir(dir_fd) as it:
            names = sorted(os.fsencode(entry.name) for entry in it)
        for name in names:
            st = os.lstat(name, dir_fd=dir_fd)
            if stat.S_ISDIR(st.st_mode):
                arcname = prefix + name + b"/"
                self.entry(dir_fd, name, arcname, st)
                child = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                )
                try:
                    self.walk(child, arcname)
                finally:
                    os.close(child)
            else:
                self.entry(dir_fd, name, prefix + name, st)


def write_canonical_tar(root: Path, out: Writable, *, epoch: int | None) -> int:
    """Write the canonical tar of the tree at *root* to *out*; return its size.

    *epoch* clamps mtimes (``None`` keeps them as they are, for digests of
    trees that are not yet normalised).
    """
    if epoch is not None and epoch < 0:
        raise TreeError(f"epoch must not be negative (got {epoch})")
    writer = _Writer(out, epoch)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        writer.emit(
            tar_header(
                b"./",
                mode=stat.S_IMODE(st.st_mode),
                uid=st.st_uid,
                gid=st.st_gid,
                size=0,
                mtime=writer.mtime(st),
                typeflag=b"5",
                xattrs=_read_xattrs(fd, b"."),
            )
        )
        writer.walk(fd, b"./")
    finally:
        os.close(fd)
    writer.emit(b"\0" * (2 * _BLOCK))
    writer.emit(b"\0" * (-writer.written % _RECORD))
    return writer.written


class _HashSink:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return len(data)


def tree_digest(root: Path, *, epoch: int | None = None) -> str:
    """``sha256:<hex>`` of the canonical tar of *root* (streamed, not stored)."""
    sink = _HashSink()
    write_canonical_tar(root, sink, epoch=epoch)
    return "sha256:" + sink.hash.hexdigest()


# --------------------------------------------------------------------------
# A lean streaming tar reader (ustar, GNU long names, pax)
# --------------------------------------------------------------------------


@dataclass
class TarEntry:
    """One archive member, with its data readable (once) through :meth:`read`."""

    name: bytes
    type: bytes
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: bytes
    uname: str
    gname: str
    devmajor: int
    devminor: int
    xattrs: list[tuple[str, bytes]]
    _reader: TarReader = field(repr=False)
    _left: int = field(default=0, repr=False)

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        data = self._reader.stream.read(n) if n else b""
        if len(data) != n:
            raise ArchiveError(f"tar member {_show(self.name)} is truncated")
        self._left -= n
        return data


_FILE_TYPES: Final = frozenset({b"0", b"\0", b"7"})


def _number(field_bytes: bytes, what: str) -> int:
    if field_bytes and field_bytes[0] & 0x80:
        value = int.from_bytes(field_bytes[1:], "big")
        if field_bytes[0] & 0x40:
            value -= 1 << (8 * len(field_bytes) - 1)
        return value
    text = field_bytes.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArchiveError(f"tar header field {what} is not a number: {field_bytes!r}") from None


def _parse_pax(data: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0 or not data[pos:space].isdigit():
            raise ArchiveError("malformed pax extended header")
        length = int(data[pos:space])
        record = data[space + 1 : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise ArchiveError("malformed pax extended header record")
        key, _, value = record[:-1].partition(b"=")
        records[key] = value
        pos += length
    return records


class TarReader:
    """Iterate over the members of an uncompressed tar stream.

    Written for speed and for control over every field: Python's
    :mod:`tarfile` costs more than the xz decompression per member and
    decodes names with a locale-dependent default. Names stay bytes.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self._current: TarEntry | None = None

    def _block(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) != n:
            raise ArchiveError("tar stream is truncated")
        return data

    def _skip_rest(self) -> None:
        entry = self._current
        if entry is None:
            return
        while entry._left:
            entry.read(min(entry._left, _CHUNK))
        pad = -entry.size % _BLOCK
        if pad:
            self._block(pad)
        self._current = None

    def __iter__(self) -> Iterator[TarEntry]:
        long_name: bytes | None = None
        long_link: bytes | None = None
        pax: dict[bytes, bytes] = {}
        while True:
            self._skip_rest()
            header = self.stream.read(_BLOCK)
            if len(header) < _BLOCK or header == b"\0" * _BLOCK:
                if header and header.strip(b"\0"):
                    raise ArchiveError("tar stream is truncated")
                return
            stored = _number(header[148:156], "chksum")
            unsigned = sum(header[:148]) + 256 + sum(header[156:])
            # The signed sum (old tars) only when needed: a byte-wise loop per header.
            if stored != unsigned and stored != unsigned - 2 * sum(
                b for b in header[:148] + header[156:] if b > 127
            ):
                raise ArchiveError("tar header checksum mismatch")
            typeflag = header[156:157]
            size = _number(header[124:136], "size")
            if typeflag in (b"L", b"K", b"x", b"g"):
                if size > _MAX_META:
                    # Read whole into memory: a hostile size would exhaust it.
                    raise ArchiveError(
                        f"tar extended header of {size} bytes is larger than {_MAX_META}"
                    )
                data = self._block(size + (-size % _BLOCK))[:size]
                if typeflag == b"L":
                    long_name = data.rstrip(b"\0")
                elif typeflag == b"K":
                    long_link = data.rstrip(b"\0")
                elif typeflag == b"x":
                    pax.update(_parse_pax(data))
                continue
            name = header[:100].split(b"\0", 1)[0]
            if header[257:262] == b"ustar" and header[345:500].strip(b"\0"):
                name = header[345:500].split(b"\0", 1)[0] + b"/" + name
            linkname = header[157:257].split(b"\0", 1)[0]
            if long_name is not None:
                name = long_name
            if long_link is not None:
                linkname = long_link
            name = pax.get(b"path", name)
            linkname = pax.get(b"linkpath", linkname)
            if b"size" in pax:
                size = int(pax[b"size"])
            mtime_text = pax.get(b"mtime")
            mtime = (
                int(float(mtime_text))
                if mtime_text is not None
                else _number(header[136:148], "mtime")
            )
            if typeflag in (b"", b"\0") and name.endswith(b"/"):
                typeflag = b"5"
            if typeflag == b"S":
                raise ArchiveError(f"sparse tar member {_show(name)} is not supported")
            if typeflag not in _FILE_TYPES:
                size = size if typeflag not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0
            uname = pax.get(b"uname", header[265:297].split(b"\0", 1)[0])
            gname = pax.get(b"gname", header[297:329].split(b"\0", 1)[0])
            entry = TarEntry(
                name=name,
                type=b"0" if typeflag in _FILE_TYPES else typeflag,
                mode=_number(header[100:108], "mode") & 0o7777,
                uid=int(pax[b"uid"]) if b"uid" in pax else _number(header[108:116], "uid"),
                gid=int(pax[b"gid"]) if b"gid" in pax else _number(header[116:124], "gid"),
                size=size,
                mtime=mtime,
                linkname=linkname,
                uname=uname.decode("utf-8", "surrogateescape"),
                gname=gname.decode("utf-8", "surrogateescape"),
                devmajor=_number(header[329:337], "devmajor"),
                devminor=_number(header[337:345], "devminor"),
                xattrs=sorted(
                    (k[len(b"SCHILY.xattr.") :].decode("utf-8", "surrogateescape"), v)
                    for k, v in pax.items()
                    if k.startswith(b"SCHILY.xattr.")
                ),
                _reader=self,
                _left=size,
            )
            long_name = long_link = None
            pax = {}
            self._current = entry
            yield entry


# --------------------------------------------------------------------------
# Reading a canonical tar (or any pax/ustar/GNU tar) safely
# --------------------------------------------------------------------------


def extract_entry(
    safe: SafeRoot,
    entry: TarEntry,
    parts: tuple[bytes, ...],
    *,
    uid: int,
    gid: int,
    placed: dict[tuple[bytes, ...], bytes],
    context: str,
    suffix: bytes = b"",
    want_md5: bool = False,
) -> bytes | None:
    """Materialise one non-root member; return the md5 of a file if asked.

    *placed* maps the components of earlier members to their physical paths,
    the only targets hard links may have.
    """
    kind = entry.type
    mtime = max(0, entry.mtime)
    where = f"{context}, member {_show(entry.name)}"
    name = (*parts[:-1], parts[-1] + suffix) if suffix else parts
    if kind == b"0":
        physical, digest = safe.write_file(
            name,
            entry,
            entry.size,
            mode=entry.mode,
            uid=uid,
            gid=gid,
            mtime=mtime,
            context=where,
            xattrs=entry.xattrs,
            want_md5=want_md5,
        )
        placed[parts] = physical
        return digest
    if kind == b"5":
        safe.make_dir(parts, mode=entry.mode, uid=uid, gid=gid, mtime=mtime, context=where)
        if entry.xattrs:
            parent, base = safe.parent(parts, context=where)
            safe.set_dir_xattrs(safe.child(parent, base), entry.xattrs)
        return None
    if kind == b"2":
        safe.make_symlink(parts, entry.linkname, uid=uid, gid=gid, mtime=mtime, context=where)
    elif kind == b"1":
        linked = member_parts(entry.linkname, context=where)
        if linked not in placed:
            raise UnsafePathError(
                f"{where}: hard link target {_show(entry.linkname)} is not an earlier "
                "member of the archive"
            )
        placed[parts] = safe.make_hardlink(name, placed[linked], context=where)
        return None
    elif kind in (b"3", b"4", b"6"):
        safe.make_node(
            name,
            kind={b"3": stat.S_IFCHR, b"4": stat.S_IFBLK, b"6": stat.S_IFIFO}[kind],
            device=os.makedev(entry.devmajor, entry.devminor),
            mode=entry.mode,
            uid=uid,
            gid=gid,
            mtime=mtime,
            context=where,
            xattrs=entry.xattrs,
        )
    else:
        raise ArchiveError(f"{where}: unsupported member type {kind!r}")
    parent, base = safe.parent(name, context=where)
    placed[parts] = safe.child(parent, base)
    return None


def read_canonical_tar(
    stream: BinaryIO, root: Path, *, listing: list[tuple[bytes, TarEntry]] | None = None
) -> int:
    """Extract a tar stream into *root*, which must be empty or absent.

    Every member goes through :class:`SafeRoot`: absolute names, ``..`` and
    writes through symlinks leaving the tree are refused, hard links must
    name an earlier member. The ``./`` member sets the root's own metadata.
    Returns the number of members. *listing* receives (path without ``./``
    or trailing ``/``, entry) for every member in order, the root as ``b""``
    (what an exporter would otherwise read the tar again for).
    """
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise TreeError(f"cannot extract a tree into {root}: it is not empty")
    context = f"tree for {root}"
    count = 0
    placed: dict[tuple[bytes, ...], bytes] = {}
    root_meta: TarEntry | None = None
    with SafeRoot(root) as safe:
        for entry in TarReader(stream):
            count += 1
            if listing is not None:
                name = entry.name
                rel = (name[2:] if name.startswith(b"./") else name).strip(b"/")
                listing.append((rel, entry))
            parts = member_parts(entry.name, context=context)
            if parts and parts[-1] == _TMP_NAME:
                raise UnsafePathError(f"{context}: member name {_show(entry.name)} is reserved")
            if not parts:
                if entry.type != b"5":
                    raise ArchiveError(f"{context}: the root member is not a directory")
                root_meta = entry
                safe.set_dir_xattrs(b".", entry.xattrs)
                continue
            extract_entry(
                safe, entry, parts, uid=entry.uid, gid=entry.gid, placed=placed, context=context
            )
        safe.finish_dir_times()
        if root_meta is not None:
            safe.chown(safe.fd, root_meta.uid, root_meta.gid, context)
            os.fchmod(safe.fd, root_meta.mode)
            ns = max(0, root_meta.mtime) * 1_000_000_000
            os.utime(safe.fd, ns=(ns, ns))
    return count
