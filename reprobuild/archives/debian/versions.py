"""Version ordering of Debian packages, as dpkg's ``verrevcmp``.

Reimplemented from dpkg's specification so that a resolution made here picks
exactly the version apt would pick; the tests run dpkg's own vectors against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from reprobuild.errors import VersionError

__all__ = [
    "DebianVersion",
    "compare_debian_versions",
    "parse_debian_version",
    "validate_debian_version",
]

_DIGITS = frozenset("0123456789")
_ASCII_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_ALNUM = _DIGITS | _ASCII_ALPHA
_UPSTREAM_OK = _ASCII_ALNUM | frozenset(".-+~:")
_REVISION_OK = _ASCII_ALNUM | frozenset(".+~")
_INT_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class DebianVersion:
    """A Debian version split as dpkg splits it: ``[epoch:]upstream[-revision]``."""

    epoch: int
    upstream: str
    revision: str

    def __str__(self) -> str:
        text = self.upstream
        if self.epoch:
            text = f"{self.epoch}:{text}"
        if self.revision:
            text = f"{text}-{self.revision}"
        return text


@lru_cache(maxsize=65536)
def parse_debian_version(text: str) -> DebianVersion:
    """Split a version the way dpkg does, without validating characters.

    Only an epoch that is not a number is refused, since no ordering is
    defined for it; :func:`validate_debian_version` applies dpkg's full checks.
    """
    text = text.strip()
    epoch = 0
    colon = text.find(":")
    if colon >= 0:
        epoch_text = text[:colon]
        if not epoch_text or not _DIGITS.issuperset(epoch_text):
            raise VersionError(f"version {text!r} has an epoch that is not a number")
        epoch = int(epoch_text)
        text = text[colon + 1 :]
    upstream, sep, revision = text.rpartition("-")
    if not sep:
        upstream, revision = revision, ""
    return DebianVersion(epoch, upstream, revision)


def validate_debian_version(text: str) -> DebianVersion:
    """Parse ``text`` and apply every check ``dpkg`` applies, raising VersionError."""
    stripped = text.strip()
    if not stripped:
        raise VersionError("version string is empty")
    if any(c.isspace() for c in stripped):
        raise VersionError(f"version {text!r} has embedded spaces")
    colon = stripped.find(":")
    if colon >= 0:
        epoch_text = stripped[:colon]
        if not epoch_text or not _DIGITS.issuperset(epoch_text):
            raise VersionError(f"epoch in version {text!r} is not a number")
        if int(epoch_text) > _INT_MAX:
            raise VersionError(f"epoch in version {text!r} is too big")
        if colon + 1 == len(stripped):
            raise VersionError(f"nothing after colon in version {text!r}")
    version = parse_debian_version(stripped)
    if not version.upstream:
        raise VersionError(f"version {text!r} has an empty upstream version")
    if version.upstream[0] not in _DIGITS:
        raise VersionError(f"version {text!r} does not start with a digit")
    if not _UPSTREAM_OK.issuperset(version.upstream):
        raise VersionError(f"invalid character in upstream part of version {text!r}")
    if not _REVISION_OK.issuperset(version.revision):
        raise VersionError(f"invalid character in revision of version {text!r}")
    return version


def _order(c: str) -> int:
    """dpkg's character weight: ``~`` sorts before everything, letters before symbols."""
    if c == "~":
        return -1
    if c in _ASCII_ALPHA:
        return ord(c)
    return ord(c) + 256


_SEGMENT = re.compile(r"([^0-9]*)([0-9]*)")


@lru_cache(maxsize=65536)
def _segments(part: str) -> tuple[tuple[tuple[int, ...], int], ...]:
    """Alternating (non-digit weights, number) pairs, as dpkg's verrevcmp walks them."""
    out: list[tuple[tuple[int, ...], int]] = []
    for m in _SEGMENT.finditer(part):
        letters, digits = m.group(1), m.group(2)
        if not letters and not digits:
            continue
        out.append((tuple(_order(c) for c in letters), int(digits) if digits else 0))
    return tuple(out)


def _verrevcmp(a: str, b: str) -> int:
    if a == b:
        return 0
    sa, sb = _segments(a), _segments(b)
    empty: tuple[tuple[int, ...], int] = ((), 0)
    for i in range(max(len(sa), len(sb))):
        la, na = sa[i] if i < len(sa) else empty
        lb, nb = sb[i] if i < len(sb) else empty
        if la != lb:
            # Compare weights position by position; a missing character (or the
            # start of the digits) weighs 0, so "~" < end < letters < symbols.
            for j in range(max(len(la), len(lb))):
                ca = la[j] if j < len(la) else 0
                cb = lb[j] if j < len(lb) else 0
                if ca != cb:
                    return -1 if ca < cb else 1
        if na != nb:
            return -1 if na < nb else 1
    return 0


def compare_debian_versions(a: str, b: str) -> int:
    """Order two Debian versions exactly like ``dpkg --compare-versions``: -1, 0 or 1."""
    if a == b:
        return 0
    va, vb = parse_debian_version(a), parse_debian_version(b)
    if va.epoch != vb.epoch:
        return -1 if va.epoch < vb.epoch else 1
    r = _verrevcmp(va.upstream, vb.upstream)
    if r:
        return r
    return _verrevcmp(va.revision, vb.revision)
