"""Symlink owners of an ISO image, which ``xorriso -extract`` does not restore.

``xorriso -find / -exec lsdl`` lists every node with its Rock Ridge mode and
numeric owner; the unpacked tree's entries take their owner (and mode) from
that listing, so two images whose links differ only in owner are told apart.
"""

from __future__ import annotations

import re
import stat
from dataclasses import replace
from pathlib import Path

from reprobuild.diff.context import Context
from reprobuild.diff.trees import Entry

__all__ = ["restore_iso_metadata"]

# "lrwxrwxrwx    1 7        8               0 Nov 14  2023 '/link' -> 'bin/su'"
_LINE = re.compile(rb"^([-dlcbps][-rwxsStT]{9})\s+\d+\s+(\d+)\s+(\d+)\s+.*? ('(?:[^']|'\"'\"')*')")
_BITS = (
    (1, "r", stat.S_IRUSR), (2, "w", stat.S_IWUSR), (4, "r", stat.S_IRGRP),
    (5, "w", stat.S_IWGRP), (7, "r", stat.S_IROTH), (8, "w", stat.S_IWOTH),
)  # fmt: skip
_EXEC = (
    (3, stat.S_IXUSR, stat.S_ISUID),
    (6, stat.S_IXGRP, stat.S_ISGID),
    (9, stat.S_IXOTH, stat.S_ISVTX),
)


def _mode(text: str) -> int:
    mode = 0
    for pos, char, bit in _BITS:
        if text[pos] == char:
            mode |= bit
    for pos, exe, special in _EXEC:
        c = text[pos]
        if c in "xst":
            mode |= exe
        if c in "sStT":
            mode |= special
    return mode


def restore_iso_metadata(ctx: Context, image: Path, tree: dict[str, Entry]) -> dict[str, Entry]:
    out = ctx.run(
        ["xorriso", "-no_rc", "-indev", str(image), "-find", "/", "-exec", "lsdl"],
        what="owners of symbolic links are not compared",
    )
    listed: dict[str, tuple[int, int, int]] = {}
    for line in out.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        name = m.group(4)[1:-1].replace(b"'\"'\"'", b"'")
        key = b"/".join(p for p in name.split(b"/") if p).decode("utf-8", "surrogateescape")
        listed[key] = (_mode(m.group(1).decode()), int(m.group(2)), int(m.group(3)))
    fixed = dict(tree)
    for key, entry in tree.items():
        if key in listed:
            mode, uid, gid = listed[key]
            fixed[key] = replace(entry, mode=mode, uid=uid, gid=gid)
    return fixed
