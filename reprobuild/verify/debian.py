"""How a Debian root without reprobuild's own description was made, from its contents.

Read from the tree itself, nothing else:

* the packages and versions: ``var/lib/dpkg/status`` (``install ok installed``);
* the architecture: the ``Architecture`` of ``dpkg`` in that file;
* the epoch: the newest mtime in the tree (debuerreotype clamps every mtime
  to its epoch, and the root directory always carries it);
* the snapshot, suite and components: ``etc/apt/sources.list`` (debootstrap
  writes ``deb MIRROR SUITE COMPONENTS``; a snapshot.debian.org URL names
  the snapshot's timestamp); without one, the snapshot at or before the
  epoch;
* the debuerreotype traits: ``etc/apt/apt.conf.d/docker-clean`` (from
  ``debuerreotype-minimizing-config``), hostname ``debuerreotype``; the slim
  variant by ``etc/dpkg/dpkg.cfg.d/docker``; the ``--include`` packages are
  the installed ones that ``apt-mark`` did not mark automatic (absent from
  ``var/lib/apt/extended_states``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from reprobuild.errors import UsageError
from reprobuild.verify.target import Target

__all__ = ["DebianRoot", "UnknownImageError", "identify_debian", "recipe_for", "recipe_string"]

_SNAPSHOT_TS = re.compile(r"/(\d{8}T\d{6}Z)/?$")


class UnknownImageError(UsageError):
    """The tree is neither reprobuild's nor one whose making reprobuild knows (exit 2)."""


@dataclass(frozen=True)
class DebianRoot:
    """What a Debian root says about how it was made."""

    packages: dict[str, str]  # name -> version (installed)
    architecture: str
    epoch: int
    mirror: str | None  # as written in sources.list
    suite: str
    components: tuple[str, ...]
    snapshot: str  # YYYYMMDDTHHMMSSZ to look up (at or before)
    tool: str  # "debuerreotype"
    slim: bool
    include: tuple[str, ...]

    def describe(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "suite": self.suite,
            "architecture": self.architecture,
            "snapshot": self.snapshot,
            "mirror": self.mirror,
            "epoch": self.epoch,
            "slim": self.slim,
            "include": list(self.include),
            "packages": len(self.packages),
        }


def _stanzas(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.split("\n"):
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            out.append(fields)
    return out


def _text(target: Target, path: str) -> str | None:
    m = target.members.get(path)
    if m is None or m.type != "file":
        return None
    return target.read(path).decode("utf-8", "replace")


def identify_debian(target: Target) -> DebianRoot:
    status = _text(target, "var/lib/dpkg/status")
    if status is None:
        raise UnknownImageError(
            f"{target.spec}: not a Debian root (no var/lib/dpkg/status), not an Arch Linux "
            "root (no var/lib/pacman/local) and no reprobuild description; reprobuild "
            "verifies its own images, debuerreotype's and archlinux-docker's roots",
        )
    packages: dict[str, str] = {}
    arch = ""
    for s in _stanzas(status):
        if s.get("Status", "").endswith(" installed") and "Package" in s:
            packages[s["Package"]] = s.get("Version", "")
            if s["Package"] == "dpkg":
                arch = s.get("Architecture", "")
    if not packages or not arch:
        raise UnknownImageError(f"{target.spec}: var/lib/dpkg/status lists no installed dpkg")
    if "etc/apt/apt.conf.d/docker-clean" not in target.members:
        raise UnknownImageError(
            f"{target.spec}: a Debian root, but not debuerreotype's (no "
            "etc/apt/apt.conf.d/docker-clean); reprobuild cannot tell how it was made",
            hint="verify knows reprobuild's own images, debuerreotype's and archlinux-docker's",
        )
    epoch = max(m.mtime for m in target.members.values())
    mirror: str | None = None
    suite = ""
    components: tuple[str, ...] = ("main",)
    for line in (_text(target, "etc/apt/sources.list") or "").splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] == "deb" and not words[1].startswith("["):
            mirror, suite, components = words[1], words[2], tuple(words[3:])
            break
    _refuse_debian_mode(target, mirror)
    if not suite:
        raise UnknownImageError(
            f"{target.spec}: etc/apt/sources.list names no suite; the snapshot cannot be found"
        )
    found = _SNAPSHOT_TS.search(mirror or "")
    snapshot = (
        found.group(1) if found else datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")
    )
    auto = {
        s["Package"]
        for s in _stanzas(_text(target, "var/lib/apt/extended_states") or "")
        if s.get("Auto-Installed") == "1" and "Package" in s
    }
    return DebianRoot(
        packages=packages,
        architecture=arch,
        epoch=epoch,
        mirror=mirror,
        suite=suite,
        components=components,
        snapshot=snapshot,
        tool="debuerreotype",
        slim="etc/dpkg/dpkg.cfg.d/docker" in target.members,
        include=tuple(sorted(p for p in packages if p not in auto)),
    )


_COMMENTED_SNAPSHOT = re.compile(r"^#\s*(?:deb\s+)?(\S*snapshot\S*?/(\d{8}T\d{6}Z))", re.M)


def _refuse_debian_mode(target: Target, mirror: str | None) -> None:
    """``debuerreotype-init --debian`` (how Docker Hub's ``debian:*`` images are
    made) points apt at deb.debian.org with -security and -updates, the snapshot
    only in a comment (``debian.sources`` from bookworm on): not what the
    library makes, so say so rather than rebuild something else."""
    sources = "\n".join(
        _text(target, p) or ""
        for p in ("etc/apt/sources.list", "etc/apt/sources.list.d/debian.sources")
    )
    found = _COMMENTED_SNAPSHOT.search(sources)
    if found is None or (mirror is not None and _SNAPSHOT_TS.search(mirror)):
        return
    raise UnknownImageError(
        f"{target.spec}: made by debuerreotype-init --debian (apt sources name "
        f"deb.debian.org, the snapshot {found.group(2)} only in a comment, as in Docker "
        "Hub's debian images); reprobuild rebuilds debuerreotype's --non-debian roots only",
        hint="recipes/lib/debuerreotype.repro follows debuerreotype-init --non-debian, "
        "-minimizing-config, -slimify and -tar; --debian's sources and updates are not in it",
    )


def recipe_string(text: str) -> str:
    """*text* as a recipe's double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def recipe_for(root: DebianRoot) -> str:
    """A recipe rebuilding *root* with recipes/lib/debuerreotype.repro."""
    ts = root.snapshot
    date = f"{ts[0:4]}-{ts[4:6]}-{ts[6:8]}T{ts[9:11]}:{ts[11:13]}:{ts[13:15]}Z"
    include = " ".join(recipe_string(p) for p in root.include)
    comps = " ".join(recipe_string(c) for c in root.components)
    # The snapshot's timestamp as the library's {timestamp}: the same step as a
    # recipe using the library for this snapshot (and so its cached result).
    template = root.mirror.replace(ts, "{timestamp}") if root.mirror else None
    mirror = f"mirror = {recipe_string(template)}; " if template else ""
    return (
        "# Written by reprobuild verify: how this root was made, as it says itself.\n"
        "let\n"
        f'  snap = snapshot {{ archive = "debian"; date = {recipe_string(date)}; '
        f"suites = [ {recipe_string(root.suite)} ]; components = [ {comps} ]; "
        f"arch = {recipe_string(root.architecture)}; }};\n"
        "  debuerreotype = import ./lib/debuerreotype.repro;\n"
        f"in debuerreotype {{ snapshot = snap; include = [ {include} ]; "
        f"slim = {'true' if root.slim else 'false'}; {mirror}}}\n"
    )
