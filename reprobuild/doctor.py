"""The external programs reprobuild drives, what needs each, and whether they are here.

One table (:data:`TOOLS`) serves ``reprobuild doctor`` and the check every
command makes before any work (:func:`require`): a missing program is named
with its Debian package and the exact ``apt-get`` command, before a single
package is fetched, not minutes later in the middle of a build.
The Debian packages are the "run" group of the repository's
``debian-packages.txt`` (a test keeps the two in step).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprobuild.errors import ReprobuildError

if TYPE_CHECKING:
    from reprobuild.archives.formats import PackageFormat

_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclass(frozen=True)
class Tool:
    """One external program: its Debian package and the features that call it."""

    name: str
    package: str
    features: tuple[str, ...]
    version_args: tuple[str, ...] = ("--version",)
    core: bool = False  # most builds need it: doctor fails without it
    version_from: str | None = None  # a sibling program that tells the version


TOOLS: tuple[Tool, ...] = (
    Tool("bwrap", "bubblewrap", ("rootfs", "run", "bootable images"), core=True),
    Tool("gpgv", "gpgv", ("lock: Debian InRelease signatures",), core=True),
    Tool("sqv", "sqv", ("Arch Linux package signatures (gpgv otherwise)",)),
    Tool("xz", "xz-utils", ("faster Packages.xz decompression (optional)",)),
    Tool("xorriso", "xorriso", ("iso9660",)),
    Tool("mkfs.ext4", "e2fsprogs", ("disk_image filesystem=ext4",), ("-V",)),
    Tool("debugfs", "e2fsprogs", ("disk_image filesystem=ext4",), ("-V",)),
    Tool(
        "mksquashfs",
        "squashfs-tools",
        ("squashfs", "disk_image filesystem=squashfs"),
        ("-version",),
    ),
    Tool(
        "mkfs.erofs", "erofs-utils", ("disk_image filesystem=erofs",), ("-V",), False, "dump.erofs"
    ),
    Tool("sfdisk", "fdisk", ("disk_image", "diff of disk images")),
    Tool("qemu-img", "qemu-utils", ("disk_image format=qcow2",)),
    Tool("mkfs.fat", "dosfstools", ("UEFI boot (iso9660, disk_image)",), ("--help",)),
    Tool("mcopy", "mtools", ("UEFI boot (iso9660, disk_image)",)),
    Tool("faketime", "faketime", ("UEFI boot (iso9660, disk_image)", "check: time")),
    Tool("disorderfs", "disorderfs", ("check: dir_order",)),
    Tool("fusermount3", "fuse3", ("check: dir_order",), ("-V",)),
    Tool("skopeo", "skopeo", ("push",)),
    Tool("diffoscope", "diffoscope-minimal", ("diff --diffoscope",)),
)
BY_NAME: Mapping[str, Tool] = {t.name: t for t in TOOLS}


def search_path() -> str:
    """PATH plus the sbin directories (mkfs.* live there; a user's PATH may lack them)."""
    parts = [p for p in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p]
    parts += [p for p in _SBIN if p not in parts]
    return os.pathsep.join(parts)


def which(name: str) -> str | None:
    return shutil.which(name, path=search_path())


@dataclass(frozen=True)
class ToolStatus:
    tool: Tool
    path: str | None
    version: str | None

    @property
    def found(self) -> bool:
        return self.path is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.tool.name,
            "package": self.tool.package,
            "found": self.found,
            "path": self.path,
            "version": self.version,
            "features": list(self.tool.features),
            "core": self.tool.core,
        }


@dataclass(frozen=True)
class Report:
    tools: tuple[ToolStatus, ...]
    sandbox: str | None  # why bwrap cannot make a sandbox here (None: it can)

    @property
    def missing(self) -> tuple[ToolStatus, ...]:
        return tuple(t for t in self.tools if not t.found)

    @property
    def ok(self) -> bool:
        """Every core tool found and the sandbox works."""
        return self.sandbox is None and all(t.found for t in self.tools if t.tool.core)

    def install_command(self) -> str | None:
        return install_command(t.tool.package for t in self.missing)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tools": [t.to_json() for t in self.tools],
            "sandbox": {"works": self.sandbox is None, "problem": self.sandbox},
            "install": self.install_command(),
        }


def install_command(packages: Iterable[str]) -> str | None:
    names = sorted(set(packages))
    if not names:
        return None
    return "apt-get install -y --no-install-recommends " + " ".join(names)


def _version(path: str, args: tuple[str, ...]) -> str:
    try:
        proc = subprocess.run(
            [path, *args],
            capture_output=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
            env={"PATH": search_path(), "LC_ALL": "C", "HOME": "/nonexistent"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(cannot run: {exc})"
    for line in (proc.stdout + proc.stderr).decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and not line.lower().startswith("usage"):
            return line[:80]
    return "(unknown version)"


def _sandbox_problem() -> str | None:
    bwrap = which("bwrap")
    if bwrap is None:
        return "bwrap is not installed"
    try:
        proc = subprocess.run(
            [bwrap, "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "true"],
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not run: {exc}"
    if proc.returncode != 0:
        text = proc.stderr.decode("utf-8", "replace").strip()
        return f"bwrap cannot create namespaces here: {text or proc.returncode}"
    return None


def diagnose() -> Report:
    """Look for every tool (with its version) and try the sandbox once."""
    statuses = []
    for tool in TOOLS:
        path = which(tool.name)
        version = None
        if path is not None:
            teller = which(tool.version_from) if tool.version_from else path
            version = _version(teller or path, tool.version_args)
        statuses.append(ToolStatus(tool, path, version))
    return Report(tuple(statuses), _sandbox_problem())


class MissingTools(ReprobuildError):
    """Programs this command needs are not installed (found before any work)."""


def require(needs: Mapping[str, Iterable[str]], *, command: str) -> None:
    """Refuse to start when a program in ``needs`` (name -> what needs it) is missing.

    A name ``a|b`` is satisfied by either program (the first is suggested).
    """
    missing = {
        name: sorted(set(why))
        for name, why in needs.items()
        if all(which(alt) is None for alt in name.split("|"))
    }
    if not missing:
        return
    lines = []
    packages = []
    for name, why in sorted(missing.items()):
        first = name.split("|")[0]
        package = BY_NAME[first].package if first in BY_NAME else first
        packages.append(package)
        shown = " or ".join(name.split("|"))
        lines.append(f"  {shown} (Debian package {package}), for {', '.join(why)}")
    cmd = install_command(packages)
    raise MissingTools(
        f"{command} needs programs that are not installed:\n" + "\n".join(lines),
        hint=f"as root: {cmd}  ('reprobuild doctor' lists every tool)",
    )


def _step_needs(kind: str, params: Mapping[str, Any], fmt: PackageFormat | None) -> list[str]:
    """The programs one step calls (mirrors what its runner or exporter requires).

    ``fmt`` is the distribution class of a rootfs's or snapshot's archive.
    """
    needs: list[str] = []
    if kind == "run":
        needs.append("bwrap")
    elif kind == "rootfs":
        # as the rootfs step decides, before the package set is known (an unknown
        # archive: assume scripts run)
        configure = (
            fmt.configures(params) if fmt is not None else params.get("configure") is not False
        )
        if configure or params.get("users") or params.get("groups"):
            needs.append("bwrap")
    elif kind == "iso9660":
        needs.append("xorriso")
    elif kind == "squashfs":
        needs.append("mksquashfs")
    elif kind == "disk_image":
        needs.append("sfdisk")
        fs = params.get("filesystem") or "ext4"
        needs += {"ext4": ["mkfs.ext4", "debugfs"], "squashfs": ["mksquashfs"]}.get(
            fs, ["mkfs.erofs"]
        )
        if params.get("format") == "qcow2":
            needs.append("qemu-img")
    elif kind == "snapshot":
        needs.append(fmt.index_tools() if fmt is not None else "gpgv")
    boot = params.get("boot") if kind in ("iso9660", "disk_image") else None
    if boot:
        needs.append("bwrap")
        if boot in ("uefi", "hybrid"):
            needs += ["mkfs.fat", "mcopy", "faketime"]
    return needs


def plan_needs(
    steps: Iterable[tuple[str, str, Mapping[str, Any], PackageFormat | None]],
) -> dict[str, list[str]]:
    """Programs a build of these (kind, name, params, distribution class) steps calls,
    each with the steps that call it."""
    out: dict[str, list[str]] = {}
    for kind, name, params, fmt in steps:
        for tool in _step_needs(kind, params, fmt):
            out.setdefault(tool, []).append(f"{kind} '{name}'")
    return out
