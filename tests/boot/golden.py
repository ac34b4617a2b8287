"""What the Debian system's tree must hold (and must not), as a golden listing.

The listing (``golden/debian-system.txt``) covers every file the recipe's
options and reprobuild's first-boot handling decide: path, type, mode,
owner, and link target or content digest. Regenerate after a deliberate
change with ``REPROBUILD_REGEN_GOLDEN=1``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import tarfile
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden" / "debian-system.txt"
LISTED = (
    "etc/apt/sources.list",
    "etc/default/locale",
    "etc/fstab",
    "etc/hostname",
    "etc/hosts",
    "etc/localtime",
    "etc/machine-id",
    "etc/ssh/*",
    "etc/systemd/network/*",
    "etc/systemd/system/*",  # (fnmatch's * crosses /)
    "etc/systemd/system-preset/*",
    "etc/timezone",
    "etc/vconsole.conf",
    "home/admin",
    "home/admin/.ssh",
    "home/admin/.ssh/*",
    "var/lib/dbus/machine-id",
    "var/lib/systemd/random-seed",
    "var/lib/systemd/credential.secret",
)
FORBIDDEN = (
    "etc/ssh/ssh_host_*",
    "var/lib/systemd/random-seed",
    "var/lib/systemd/credential.secret",
    "var/lib/dbus/machine-id",
)


def _describe(t: tarfile.TarFile, m: tarfile.TarInfo) -> str:
    kind = {tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.REGTYPE: "f"}.get(m.type, "?")
    line = f"{m.name.removeprefix('./').rstrip('/')} {kind} {m.mode:04o} {m.uid}:{m.gid}"
    if m.issym():
        return f"{line} -> {m.linkname}"
    if m.isfile():
        f = t.extractfile(m)
        data = f.read() if f is not None else b""
        return f"{line} {len(data)} {hashlib.sha256(data).hexdigest()[:16]}"
    return line


def listing(tree_tar: Path) -> tuple[str, list[str], dict[str, str]]:
    """(the golden text, forbidden paths found, some file contents by path)."""
    lines = []
    bad = []
    contents = {}
    with tarfile.open(tree_tar) as t:
        for m in t:
            rel = m.name.removeprefix("./").rstrip("/")
            if any(fnmatch.fnmatchcase(rel, p) for p in FORBIDDEN):
                bad.append(rel)
            if any(fnmatch.fnmatchcase(rel, p) for p in LISTED):
                lines.append(_describe(t, m))
                if m.isfile() and m.size < 4096:
                    f = t.extractfile(m)
                    contents[rel] = f.read().decode("utf-8", "replace") if f else ""
            if rel == "etc/shadow":
                f = t.extractfile(m)
                for entry in (f.read().decode() if f else "").splitlines():
                    if entry.startswith(("root:", "admin:")):
                        lines.append("etc/shadow: " + entry)
    return "\n".join(sorted(lines)) + "\n", bad, contents


def check_tree(tree_tar: Path) -> None:
    text, bad, contents = listing(tree_tar)
    assert not bad, f"per-machine state in the image: {bad}"
    assert contents.get("etc/machine-id") == ""
    if os.environ.get("REPROBUILD_REGEN_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
