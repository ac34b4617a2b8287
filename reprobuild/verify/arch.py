"""How an Arch Linux root without reprobuild's own description was made, from its contents.

archlinux-docker's roots (``scripts/make-rootfs.sh``, rebuilt with
``recipes/lib/archlinux-docker.repro``) say, in the tree itself:

* the packages and versions: ``var/lib/pacman/local/NAME-VERSION/desc``;
  ``base`` and the group (archlinux-docker's GROUP argument) are the ones
  installed explicitly (no ``%REASON%`` 1);
* the epoch: the newest mtime (every mtime is set to it), and so the archive
  day: archlinux-docker's repro image is built from the archive of the day
  of its ``SOURCE_DATE_EPOCH``;
* ``etc/pacman.conf``: devtools' text, then archlinux-docker's NoExtract
  options (the trait that names it), with the ``#DisableSandbox`` line
  turned on; its sections are the repositories;
* ``etc/pacman.d/mirrorlist``, written as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from reprobuild.verify.debian import UnknownImageError, recipe_string
from reprobuild.verify.target import Target

__all__ = ["ArchRoot", "identify_arch", "is_arch", "recipe_for_arch"]

_NOEXTRACT = "[options]\nNoExtract"
_SANDBOX = ("DisableSandboxFilesystem", "DisableSandbox")


@dataclass(frozen=True)
class ArchRoot:
    """What an archlinux-docker root says about how it was made."""

    packages: dict[str, str]  # name -> version
    architecture: str
    epoch: int
    repos: tuple[str, ...]
    pacman_conf: str  # as given to the library (before its NoExtract and sandbox edits)
    mirrorlist: str
    group: str | None
    tool: str = "archlinux-docker"

    @property
    def date(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def describe(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "architecture": self.architecture,
            "snapshot": self.date,
            "repos": list(self.repos),
            "epoch": self.epoch,
            "group": self.group,
            "packages": len(self.packages),
        }


def is_arch(target: Target) -> bool:
    m = target.members.get("var/lib/pacman/local")
    return m is not None and m.type == "dir"


def _desc(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if lines and lines[0].startswith("%") and lines[0].endswith("%"):
            out[lines[0].strip("%")] = lines[1:]
    return out


def _original_conf(conf: str) -> str | None:
    """The pacman.conf archlinux-docker was given, from the one it left."""
    cut = conf.rfind(_NOEXTRACT)
    if cut < 0:
        return None
    conf = conf[:cut]
    for word in _SANDBOX:
        conf = conf.replace(f"# No kernel landlock in containerd\n{word}\n", f"#{word}\n", 1)
    return conf


def identify_arch(target: Target) -> ArchRoot:
    def text(path: str) -> str | None:
        m = target.members.get(path)
        return target.read(path).decode("utf-8", "replace") if m and m.type == "file" else None

    packages: dict[str, str] = {}
    explicit: dict[str, list[str]] = {}  # name -> its groups
    arch = ""
    for path in sorted(target.members):
        if not (path.startswith("var/lib/pacman/local/") and path.endswith("/desc")):
            continue
        desc = _desc(text(path) or "")
        name, version = (desc.get("NAME") or [""])[0], (desc.get("VERSION") or [""])[0]
        if not name or not version:
            continue
        packages[name] = version
        if desc.get("REASON", ["0"])[0] != "1":
            explicit[name] = desc.get("GROUPS", [])
        if name == "pacman" or not arch:
            arch = (desc.get("ARCH") or [""])[0] or arch
    if not packages:
        raise UnknownImageError(f"{target.spec}: var/lib/pacman/local lists no package")
    conf = _original_conf(text("etc/pacman.conf") or "")
    if conf is None or "base" not in explicit:
        raise UnknownImageError(
            f"{target.spec}: an Arch Linux root, but not archlinux-docker's (no base, or no "
            "NoExtract options in etc/pacman.conf); reprobuild cannot tell how it was made",
            hint="verify knows reprobuild's own images, debuerreotype's and archlinux-docker's",
        )
    others = sorted(set(explicit) - {"base"})
    group: str | None = None
    if len(others) == 1:
        group = others[0]  # a meta package such as base-devel
    elif others:
        shared = set.intersection(*(set(explicit[n]) for n in others))
        if len(shared) != 1:
            raise UnknownImageError(
                f"{target.spec}: packages installed explicitly besides base "
                f"({', '.join(others)}) are not one group archlinux-docker could have named"
            )
        group = shared.pop()
    repos = tuple(
        line.strip()[1:-1]
        for line in conf.splitlines()
        if line.strip().startswith("[") and line.strip().endswith("]")
        and line.strip() != "[options]"
    )  # fmt: skip
    return ArchRoot(
        packages=packages,
        architecture="x86_64" if arch in ("", "any") else arch,
        epoch=max(m.mtime for m in target.members.values()),
        repos=repos,
        pacman_conf=conf,
        mirrorlist=text("etc/pacman.d/mirrorlist") or "",
        group=group,
    )


def recipe_for_arch(root: ArchRoot) -> str:
    """A recipe rebuilding *root* with recipes/lib/archlinux-docker.repro."""

    s = recipe_string
    repos = " ".join(s(r) for r in root.repos)
    group = s(root.group) if root.group else "null"
    return (
        "# Written by reprobuild verify: how this root was made, as it says itself.\n"
        "let\n"
        f'  snap = snapshot {{ archive = "archlinux"; date = {s(root.date)}; '
        f"repos = [ {repos} ]; arch = {s(root.architecture)}; }};\n"
        "  archlinux = import ./lib/archlinux-docker.repro;\n"
        f"in archlinux {{ snapshot = snap; pacman_conf = {s(root.pacman_conf)}; "
        f"mirrorlist = {s(root.mirrorlist)}; group = {group}; }}\n"
    )
