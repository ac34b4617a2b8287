"""Version ordering of Arch Linux packages, as pacman's ``vercmp`` (libalpm).

Reimplemented from libalpm so that a resolution made here picks exactly the
version pacman would pick; the tests run pacman's own vectors against it.
"""

from __future__ import annotations

__all__ = ["vercmp"]

_DIGITS = frozenset("0123456789")
_ASCII_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_ALNUM = _DIGITS | _ASCII_ALPHA


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
