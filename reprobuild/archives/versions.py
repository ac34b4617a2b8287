"""Version ordering for Debian (dpkg) and Arch (pacman) packages.

Both algorithms are reimplemented from their specifications so that a
resolution made here picks exactly the version apt or pacman would pick; the
tests run upstream's own vectors against them.
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
    "vercmp",
]

# --------------------------------------------------------------------------
# Debian (dpkg)
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Arch (pacman / libalpm)
# --------------------------------------------------------------------------


def _split_evr(evr: str) -> tuple[str, str, str | None]:
    """libalpm's parseEVR: epoch defaults to "0"; the release follows the last '-'."""
    i = 0
    while i < len(evr) and evr[i] in _DIGITS:
        i += 1
    dash = evr.rfind("-", i)
    if i < len(evr) and evr[i] == ":":
        epoch = evr[:i] or "0"
        start = i + 1
    else:
        epoch = "0"
        start = 0
    if dash >= 0:
        return epoch, evr[start:dash], evr[dash + 1 :]
    return epoch, evr[start:], None


def _rpmvercmp(a: str, b: str) -> int:
    """rpm's segment comparison as used by pacman (ASCII classes, C strcmp)."""
    if a == b:
        return 0
    one = two = 0  # start of the current segment in a / b
    p1 = p2 = 0  # end of the previous segment
    la, lb = len(a), len(b)
    while one < la and two < lb:
        while one < la and a[one] not in _ASCII_ALNUM:
            one += 1
        while two < lb and b[two] not in _ASCII_ALNUM:
            two += 1
        if one >= la or two >= lb:
            break
        if one - p1 != two - p2:
            return -1 if one - p1 < two - p2 else 1
        p1, p2 = one, two
        isnum = a[p1] in _DIGITS
        cls = _DIGITS if isnum else _ASCII_ALPHA
        while p1 < la and a[p1] in cls:
            p1 += 1
        while p2 < lb and b[p2] in cls:
            p2 += 1
        if two == p2:
            return 1 if isnum else -1
        seg1, seg2 = a[one:p1], b[two:p2]
        if isnum:
            seg1, seg2 = seg1.lstrip("0"), seg2.lstrip("0")
            if len(seg1) != len(seg2):
                return 1 if len(seg1) > len(seg2) else -1
        if seg1 != seg2:
            return -1 if seg1 < seg2 else 1
        one, two = p1, p2
    if one >= la and two >= lb:
        return 0
    if (one >= la and b[two] not in _ASCII_ALPHA) or (one < la and a[one] in _ASCII_ALPHA):
        return -1
    return 1


def vercmp(a: str, b: str) -> int:
    """Order two Arch versions exactly like pacman's ``vercmp``: -1, 0 or 1.

    The release is compared only when both sides have one, so ``1.5`` equals
    ``1.5-1``, as in libalpm's ``alpm_pkg_vercmp``.
    """
    if a == b:
        return 0
    e1, v1, r1 = _split_evr(a)
    e2, v2, r2 = _split_evr(b)
    ret = _rpmvercmp(e1, e2)
    if ret == 0:
        ret = _rpmvercmp(v1, v2)
        if ret == 0 and r1 is not None and r2 is not None:
            ret = _rpmvercmp(r1, r2)
    return ret
