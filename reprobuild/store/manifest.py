"""How a large content object is kept: an ordered list of chunks (and derived regions).

A *manifest* lists the pieces whose concatenation is the content:

* a :class:`ChunkRef` names one content-defined chunk (sha256 of its bytes,
  its size, and its git blob id, so a push can build a git tree for it
  without reading the chunk again);
* a :class:`Derived` region is bytes the store re-makes on read: a gzip or
  zstd stream that the pinned compressors of :mod:`reprobuild.export.tar`
  produce from the concatenation of its ``inner`` chunks. A one-byte change
  inside a compressed layer changes every compressed byte after it, but
  only one or two chunks of what it decompresses to; keeping the latter is
  what makes a variant of an OCI archive cheap.

Manifests are canonical JSON (sorted keys, one line), so the same content
always has the same manifest bytes on every machine, and they are parsed
strictly: a manifest may come from a remote, which is not trusted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reprobuild.canonical import canonical_bytes
from reprobuild.errors import IntegrityError

MANIFEST_FORMAT = 2
# Content-defined chunking (FastCDC 2020 via pyfastcdc): the library's
# average is avg + min, so this yields chunks of about 64 KiB on real data.
CDC_AVG = 48 << 10
CDC_MIN = 16 << 10
CDC_MAX = 256 << 10
# Content up to this size stays one whole file (zero-copy reads, no manifest).
SMALL_MAX = 4 << 20
DERIVE_METHODS = ("gzip", "gzip-blocks", "zstd")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEXANY = re.compile(r"(?:[0-9a-f]{2})*")


@dataclass(frozen=True)
class ChunkRef:
    """One stored chunk: ``sha256`` of its bytes (its name), size, git blob id."""

    sha256: str
    size: int
    git: str

    def to_json(self) -> list[Any]:
        return ["c", self.sha256, self.size, self.git]


@dataclass(frozen=True)
class Derived:
    """``size`` bytes re-made by compressing the ``inner`` chunks with ``method``.

    ``params`` holds what the stream needs besides the compressed data (for
    gzip the 10-byte header in hex; for zstd nothing: level and frame flags
    are pinned). The bytes are checked against the content's sha256 on read.
    """

    method: str
    size: int
    inner: tuple[ChunkRef, ...]
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def inner_size(self) -> int:
        return sum(c.size for c in self.inner)

    def to_json(self) -> list[Any]:
        return [self.method, self.size, dict(self.params), [c.to_json() for c in self.inner]]


Segment = ChunkRef | Derived


@dataclass(frozen=True)
class Manifest:
    """A chunked content object: its sha256 and size, and the pieces making it."""

    sha256: str
    size: int
    segments: tuple[Segment, ...]

    def chunks(self) -> Iterator[ChunkRef]:
        """Every chunk the content needs (with repeats), in order."""
        for seg in self.segments:
            if isinstance(seg, ChunkRef):
                yield seg
            else:
                yield from seg.inner

    def unique_chunks(self) -> dict[str, ChunkRef]:
        return {c.sha256: c for c in self.chunks()}

    def to_bytes(self) -> bytes:
        data = {
            "format": MANIFEST_FORMAT,
            "sha256": self.sha256,
            "size": self.size,
            "segments": [s.to_json() for s in self.segments],
        }
        return canonical_bytes(data) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, *, expect: str | None = None) -> Manifest:
        """Parse strictly; ``expect`` is the sha256 the manifest must describe."""
        try:
            obj = json.loads(data)
            if obj["format"] != MANIFEST_FORMAT:
                raise ValueError(f"unknown manifest format {obj['format']!r}")
            sha = _hex(obj["sha256"], _HEX64)
            size = _size(obj["size"])
            segments = tuple(_segment(s) for s in obj["segments"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise IntegrityError(f"malformed chunk manifest: {exc}") from None
        total = sum(s.size for s in segments)
        if total != size:
            raise IntegrityError(f"chunk manifest of sha256:{sha} adds up to {total}, not {size}")
        if expect is not None and sha != expect:
            raise IntegrityError(f"chunk manifest names sha256:{sha}, expected sha256:{expect}")
        return cls(sha, size, segments)


def _hex(value: Any, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"bad digest {value!r}")
    return value


def _size(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"bad size {value!r}")
    return value


def _chunk(item: Any) -> ChunkRef:
    if not isinstance(item, list) or len(item) != 4 or item[0] != "c":
        raise ValueError(f"bad chunk entry {item!r}")
    size = _size(item[2])
    if size == 0 or size > CDC_MAX:
        raise ValueError(f"bad chunk size {size}")
    return ChunkRef(_hex(item[1], _HEX64), size, _hex(item[3], _HEX40))


def _segment(item: Any) -> Segment:
    if isinstance(item, list) and item and item[0] == "c":
        return _chunk(item)
    if not isinstance(item, list) or len(item) != 4 or item[0] not in DERIVE_METHODS:
        raise ValueError(f"bad segment {item!r}")
    params = item[2]
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _HEXANY.fullmatch(v)
        for k, v in params.items()
    ):
        raise ValueError(f"bad derivation parameters {params!r}")
    return Derived(str(item[0]), _size(item[1]), tuple(_chunk(c) for c in item[3]), params)
