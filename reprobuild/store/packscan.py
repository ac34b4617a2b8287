"""A git pack from a remote, checked as it arrives: no object too large, no pack too long.

dulwich inflates each object of a received pack whole into memory (to hash
and index it), trusting the size its header declares, so one object header
claiming gigabytes, or a few kilobytes of zlib that inflate to gigabytes,
would take that much memory. :class:`PackGuard` reads the pack stream as it
is received, before dulwich does: it parses each object's header (and a
delta's target size), inflates the zlib stream in bounded pieces only to find
where it ends, and raises as soon as an object is larger than allowed or the
pack longer than allowed. Format: Documentation/gitformat-pack.txt.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from dulwich.objects import ObjectID

from reprobuild.errors import StoreError

_OFS_DELTA = 6
_REF_DELTA = 7
_PIECE = 1 << 16


class PackTooLarge(StoreError):
    """A remote's pack, or one object in it, is larger than this machine accepts."""


class PackGuard:
    """Feed it the pack's bytes in order; it raises PackTooLarge on the first excess."""

    def __init__(self, *, max_object: int, max_bytes: int, what: str, hash_size: int = 20):
        self.max_object = max_object
        self.max_bytes = max_bytes
        self.what = what
        self.received = 0
        self._hash_size = hash_size
        self._buf = b""
        self._count: int | None = None  # objects still to come (None: header not read)
        self._zlib: zlib._Decompress | None = None
        self._inflated = 0
        self._declared = 0
        self._delta_head = b""  # first inflated bytes of a delta: its base and target sizes
        self._is_delta = False

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.max_bytes:
            raise PackTooLarge(
                f"{self.what} sent more than {self.max_bytes} bytes",
                hint="REPROBUILD_REMOTE_MAX_TOTAL sets how much one transfer may bring",
            )
        self._buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        """Consume what the buffer allows; True if progress was made and more may follow."""
        if self._count is None:
            if len(self._buf) < 12:
                return False
            if self._buf[:4] != b"PACK":
                raise StoreError(f"{self.what} sent something that is not a git pack")
            self._count = int.from_bytes(self._buf[8:12], "big")
            self._buf = self._buf[12:]
            return True
        if self._zlib is not None:
            return self._inflate()
        if self._count == 0:
            self._buf = b""  # the trailing checksum (dulwich checks it)
            return False
        return self._header()

    def _header(self) -> bool:
        buf = self._buf
        if not buf:
            return False
        i = 0
        byte = buf[0]
        kind = (byte >> 4) & 7
        size = byte & 15
        shift = 4
        while byte & 0x80:
            i += 1
            if i >= len(buf):
                return False
            byte = buf[i]
            size |= (byte & 0x7F) << shift
            shift += 7
            if shift > 70:
                raise StoreError(f"{self.what} sent a malformed git pack (object header)")
        i += 1
        if kind == _OFS_DELTA:
            while True:
                if i >= len(buf):
                    return False
                byte = buf[i]
                i += 1
                if not byte & 0x80:
                    break
        elif kind == _REF_DELTA:
            i += self._hash_size
            if i > len(buf):
                return False
        self._check(size)
        self._buf = buf[i:]
        self._declared = size
        self._inflated = 0
        self._is_delta = kind in (_OFS_DELTA, _REF_DELTA)
        self._delta_head = b""
        self._zlib = zlib.decompressobj()
        return True

    def _inflate(self) -> bool:
        assert self._zlib is not None
        if not self._buf:
            return False
        data, self._buf = self._buf, b""
        while data:
            out = self._zlib.decompress(data, _PIECE)
            self._inflated += len(out)
            if self._inflated > self._declared:
                raise PackTooLarge(
                    f"{self.what} sent a git object that inflates past its declared size"
                )
            if self._is_delta and len(self._delta_head) < 20:
                self._delta_head += out[: 20 - len(self._delta_head)]
                self._check_delta()
            if self._zlib.eof:
                self._buf = self._zlib.unused_data + self._buf
                self._zlib = None
                assert self._count is not None
                self._count -= 1
                return True
            data = self._zlib.unconsumed_tail
        return False

    def _check_delta(self) -> None:
        """A delta names its target's size after its base's: both are bounded."""
        head = self._delta_head
        pos = 0
        for _ in range(2):
            size = shift = 0
            while True:
                if pos >= len(head):
                    return
                byte = head[pos]
                pos += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            self._check(size)

    def _check(self, size: int) -> None:
        if size > self.max_object:
            raise PackTooLarge(
                f"{self.what} sent a git object of {size} bytes; reprobuild's objects are at "
                f"most {self.max_object}",
                hint="a reprobuild remote holds content as chunks and pieces of a few MiB",
            )


def object_size(objects: Any, sha: ObjectID) -> int | None:
    """The size of a git object of a local repository, read from its header alone
    (a delta's target size for a deltified one); None if not found there."""
    try:
        path = objects._get_shafile_path(sha)
        with open(path, "rb") as f:
            head = zlib.decompressobj().decompress(f.read(64), 64)
        return int(head.split(b"\0", 1)[0].split(b" ")[1])
    except FileNotFoundError:
        pass
    except (ValueError, IndexError, zlib.error, OSError):
        return None
    for pack in objects.packs:
        try:
            offset = pack.index.object_offset(sha)
        except KeyError:
            continue
        with open(pack.data.path, "rb") as f:
            f.seek(offset)
            head = f.read(64 + 32)
            return _packed_size(head, f)
    return None


def _packed_size(head: bytes, f: Any) -> int | None:
    byte = head[0]
    kind = (byte >> 4) & 7
    size = byte & 15
    shift, i = 4, 0
    while byte & 0x80:
        i += 1
        byte = head[i]
        size |= (byte & 0x7F) << shift
        shift += 7
    i += 1
    if kind not in (_OFS_DELTA, _REF_DELTA):
        return size
    if kind == _OFS_DELTA:
        while head[i] & 0x80:
            i += 1
        i += 1
    else:
        i += 20
    delta = zlib.decompressobj().decompress(head[i:] + f.read(64), 32)
    sizes = []
    pos = 0
    for _ in range(2):
        value = shift = 0
        while True:
            byte = delta[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        sizes.append(value)
    return max(sizes)


def bounded_reader(objects: Any, max_object: int, what: str) -> Callable[[ObjectID], Any]:
    """``objects[sha]`` for a local repository, refusing an object larger than
    ``max_object`` before inflating it (dulwich holds a whole object in memory)."""

    def get(sha: ObjectID) -> Any:
        size = object_size(objects, sha)
        if size is not None and size > max_object:
            raise PackTooLarge(
                f"{what} holds a git object of {size} bytes ({sha.decode()}); reprobuild's "
                f"objects are at most {max_object}",
                hint="a reprobuild remote holds content as chunks and pieces of a few MiB",
            )
        return objects[sha]

    return get


__all__ = ["PackGuard", "PackTooLarge", "bounded_reader", "object_size"]
