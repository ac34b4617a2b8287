"""C library ``fnmatch`` patterns as the reference tools use them, on bytes.

GNU tar's ``--exclude`` and pacman's ``NoExtract`` both call ``fnmatch``
without ``FNM_PATHNAME`` or ``FNM_PERIOD``: ``*`` and ``?`` match ``/`` and a
leading dot, ``[...]`` is a class (``!`` or ``^`` negates), ``\\`` escapes.
GNU tar adds ``FNM_LEADING_DIR`` (a match of a leading part ending before a
``/`` counts). Python's :mod:`fnmatch` has no escapes and no leading-dir
mode, hence this small translator.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["fnmatch_regex"]


@lru_cache(maxsize=512)
def fnmatch_regex(pattern: str, *, leading_dir: bool = False) -> re.Pattern[bytes]:
    """The compiled equivalent of ``fnmatch(pattern, s, FNM_LEADING_DIR if leading_dir else 0)``."""
    raw = pattern.encode("utf-8", "surrogateescape")
    out = []
    i = 0
    while i < len(raw):
        c = raw[i : i + 1]
        i += 1
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i < len(raw):
            out.append(re.escape(raw[i : i + 1]))
            i += 1
        elif c == b"[":
            j = i
            if j < len(raw) and raw[j : j + 1] in (b"!", b"^"):
                j += 1
            if j < len(raw) and raw[j : j + 1] == b"]":
                j += 1
            while j < len(raw) and raw[j : j + 1] != b"]":
                j += 1
            if j >= len(raw):
                out.append(re.escape(c))
                continue
            body = raw[i:j]
            i = j + 1
            negate = body[:1] in (b"!", b"^")
            if negate:
                body = body[1:]
            body = body.replace(b"\\", b"\\\\")
            out.append(b"[" + (b"^" if negate else b"") + body + b"]")
        else:
            out.append(re.escape(c))
    tail = b"(?:/.*)?" if leading_dir else b""
    return re.compile(b"(?s:" + b"".join(out) + b")" + tail + b"\\Z")
