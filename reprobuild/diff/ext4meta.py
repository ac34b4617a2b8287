"""What ``debugfs rdump`` loses, read back from the ext4 image itself.

``rdump`` restores a file's owner after its mode, and the kernel clears the
setuid and setgid bits on ``chown``; it never restores a symlink's owner or
any extended attribute. A diff that trusted the dumped tree would call two
images equal that differ in a setuid bit, a sticky bit or a
``security.capability``. One ``debugfs -f`` run lists every directory
(``ls -p``: mode, uid and gid of each entry, the directory itself as
``.``) and every path's extended attributes (``ea_list``), and the tree's
entries get those values.
"""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

from reprobuild.diff.context import Context
from reprobuild.diff.trees import Entry

__all__ = ["restore_ext4_metadata"]


def _quote(path: bytes) -> bytes:
    """debugfs (libss) words: double quotes, a quote doubled, nothing else special."""
    return b'"' + path.replace(b'"', b'""') + b'"'


def restore_ext4_metadata(
    ctx: Context, image: Path, tree: dict[str, Entry], work: Path
) -> dict[str, Entry]:
    """``tree`` (keys relative to the image's root, ``""`` the root) with the modes,
    owners and extended attributes the image records."""
    keys = sorted(tree)
    script = bytearray()
    for key in keys:
        path = b"/" + key.encode("utf-8", "surrogateescape")
        if tree[key].type == "directory":
            script += b"ls -p " + _quote(path) + b"\n"
        script += b"ea_list " + _quote(path) + b"\n"
    script_path = work / "metadata.debugfs"
    script_path.write_bytes(bytes(script))
    out = ctx.run(["debugfs", "-f", str(script_path), str(image)], what="metadata not compared")
    meta: dict[str, tuple[int, int, int]] = {}
    xattrs: dict[str, list[tuple[str, bytes]]] = {}
    directory = current = None
    for line in out.split(b"\n"):
        if line.startswith(b"debugfs: ls -p "):
            directory, current = _unquote(line[len(b"debugfs: ls -p ") :]), None
        elif line.startswith(b"debugfs: ea_list "):
            directory, current = None, _unquote(line[len(b"debugfs: ea_list ") :])
        elif directory is not None and line.startswith(b"/") and line.count(b"/") >= 7:
            _ino, raw_mode, raw_uid, raw_gid, *name_parts = line.split(b"/")[1:-2]
            child = b"/".join(name_parts)
            if child == b"..":
                continue
            full = directory if child == b"." else directory.rstrip(b"/") + b"/" + child
            meta[_tree_key(full)] = (int(raw_mode, 8), int(raw_uid), int(raw_gid))
        elif current is not None and line.startswith(b"  ") and b" = " in line:
            head, value = line.strip().split(b" = ", 1)
            attr = head.rsplit(b" (", 1)[0].decode("utf-8", "surrogateescape")
            xattrs.setdefault(_tree_key(current), []).append((attr, value.strip()))
    fixed = {}
    for key, entry in tree.items():
        known = meta.get(key)
        fixed[key] = replace(
            entry,
            mode=stat.S_IMODE(known[0]) if known else entry.mode,
            uid=known[1] if known else entry.uid,
            gid=known[2] if known else entry.gid,
            xattrs=tuple(sorted(xattrs.get(key, ()))),
        )
    return fixed


def _unquote(word: bytes) -> bytes:
    word = word.strip()
    if word.startswith(b'"') and word.endswith(b'"') and len(word) >= 2:
        return word[1:-1].replace(b'""', b'"')
    return word


def _tree_key(path: bytes) -> str:
    return b"/".join(p for p in path.split(b"/") if p).decode("utf-8", "surrogateescape")
