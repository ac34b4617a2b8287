"""Comparing a target's tree with its rebuild, and saying where each difference comes from.

Every differing path is attributed:

* ``package``: a file dpkg lists as shipped by a package (its ``.list``,
  with merged-/usr paths followed); for a file the package's ``data.tar``
  is read and the report says whether the image's bytes, the rebuild's, or
  neither are the package's own;
* ``generated``: a file that installing writes and no package ships
  (dpkg's and apt's databases, ``/etc/shadow``, ``ld.so.cache``,
  update-alternatives' links, the image tool's own configuration);
* ``unexplained``: anything else.

A content difference also gives the first differing bytes (offset and up
to 16 bytes of each side, in hex).
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprobuild.verify.target import Member

__all__ = ["PathDifference", "Summary", "alpm_member", "compare_trees", "deb_member", "owners"]

#: Paths no package ships but installing writes (glob patterns, first match wins).
GENERATED: tuple[tuple[str, str], ...] = (
    ("var/lib/dpkg/*", "dpkg's database"),
    ("var/lib/pacman/*", "pacman's database"),
    ("etc/pacman.conf", "the image tool (archlinux-docker's pacman.conf)"),
    ("etc/pacman.d/*", "the image tool (mirrorlist, keyring)"),
    ("var/lib/apt/extended_states", "apt-mark (which packages were installed automatically)"),
    ("var/cache/debconf/*", "debconf's database (maintainer scripts)"),
    ("etc/alternatives/*", "update-alternatives (maintainer scripts)"),
    ("etc/ld.so.cache", "ldconfig"),
    ("etc/passwd*", "base-passwd and adduser (maintainer scripts)"),
    ("etc/group*", "base-passwd and adduser (maintainer scripts)"),
    ("etc/shadow*", "shadowconfig (passwd's maintainer scripts)"),
    ("etc/gshadow*", "shadowconfig (passwd's maintainer scripts)"),
    ("etc/subuid*", "passwd's maintainer scripts"),
    ("etc/subgid*", "passwd's maintainer scripts"),
    ("etc/localtime", "tzdata's maintainer scripts"),
    ("etc/timezone", "tzdata's maintainer scripts"),
    ("etc/hostname", "the image tool (debuerreotype-init)"),
    ("etc/resolv.conf", "the image tool (debuerreotype-init)"),
    ("etc/fstab", "the bootstrapper (debootstrap)"),
    ("etc/apt/sources.list", "the bootstrapper (debootstrap's mirror)"),
    ("etc/apt/apt.conf.d/docker-*", "debuerreotype-minimizing-config"),
    ("etc/dpkg/dpkg.cfg.d/docker*", "debuerreotype-minimizing-config or -slimify"),
    ("usr/sbin/policy-rc.d", "debuerreotype-minimizing-config"),
    ("etc/machine-id", "systemd (emptied by the image tool)"),
    ("var/log/*", "logs of the installation"),
    ("usr/share/info/dir*", "install-info (maintainer scripts)"),
    ("etc/.pwd.lock", "the shadow tools' lock file"),
)
_MERGED = ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32")


@dataclass(frozen=True)
class PathDifference:
    path: str
    change: str  # "content", "metadata", "only in image", "only in rebuild"
    fields: tuple[str, ...]
    image: Mapping[str, object] | None
    rebuild: Mapping[str, object] | None
    cause: str  # "package", "generated", "unexplained"
    package: str | None
    explanation: str
    first_difference: Mapping[str, object] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.change,
            "fields": list(self.fields),
            "image": dict(self.image) if self.image else None,
            "rebuild": dict(self.rebuild) if self.rebuild else None,
            "cause": self.cause,
            "package": self.package,
            "explanation": self.explanation,
            "first_difference": dict(self.first_difference) if self.first_difference else None,
        }


@dataclass(frozen=True)
class Summary:
    identical: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.identical / self.total if self.total else 100.0

    def line(self) -> str:
        return f"{self.identical} of {self.total} paths identical ({self.percent:.2f}%)"


def owners(members: Mapping[str, Member], read: Callable[[str], bytes]) -> dict[str, str]:
    """path -> package, from dpkg's ``.list`` files (merged-/usr followed) or pacman's
    ``local/*/files`` of a tree."""
    merged = {
        d for d in _MERGED if (m := members.get(d)) is not None and m.type == "symlink"
        and m.target.rstrip("/") in (f"usr/{d}", f"/usr/{d}")
    }  # fmt: skip
    out: dict[str, str] = {}
    for path, m in sorted(members.items()):
        if m.type != "file":
            continue
        if path.startswith("var/lib/dpkg/info/") and path.endswith(".list"):
            package = path.rsplit("/", 1)[1].removesuffix(".list").split(":", 1)[0]
        elif path.startswith("var/lib/pacman/local/") and path.endswith("/files"):
            package = path.split("/")[4].rsplit("-", 2)[0]  # NAME-VERSION-REL
        else:
            continue
        section = "%FILES%"  # pacman's files: only that section lists paths
        for line in read(path).decode("utf-8", "surrogateescape").splitlines():
            if line.startswith("%") and line.endswith("%"):
                section = line
                continue
            p = line.strip().lstrip("/")
            if not p or p == "." or section != "%FILES%":
                continue
            top = p.split("/", 1)[0]
            if top in merged and "/" in p:
                p = "usr/" + p
            out.setdefault(p, package)
    return out


def _first_difference(a: bytes, b: bytes) -> dict[str, object]:
    n = min(len(a), len(b))
    offset = next((i for i in range(n) if a[i] != b[i]), n)
    return {
        "offset": offset,
        "image": a[offset : offset + 16].hex(),
        "rebuild": b[offset : offset + 16].hex(),
    }


def _generated(path: str) -> str | None:
    for pattern, why in GENERATED:
        if fnmatch.fnmatchcase(path, pattern):
            return why
    return None


def compare_trees(
    image: Mapping[str, Member],
    rebuild: Mapping[str, Member],
    *,
    read_image: Callable[[str], bytes],
    read_rebuild: Callable[[str], bytes],
    package_file: Callable[[str, str], bytes | None],
) -> tuple[list[PathDifference], Summary]:
    """Compare two trees; *package_file(package, path)* gives a package's own
    bytes for a path it ships (None when it cannot be read)."""
    shipped = owners(image, read_image)
    shipped.update({k: v for k, v in owners(rebuild, read_rebuild).items() if k not in shipped})
    paths = sorted(set(image) | set(rebuild))
    out: list[PathDifference] = []
    for path in paths:
        a, b = image.get(path), rebuild.get(path)
        fa = a.fields() if a else None
        fb = b.fields() if b else None
        if fa == fb:
            continue
        if a is None or b is None:
            change = "only in rebuild" if a is None else "only in image"
            fields: tuple[str, ...] = ()
        else:
            assert fa is not None and fb is not None
            fields = tuple(k for k in fa if fa[k] != fb[k])
            change = "content" if "sha256" in fields or "target" in fields else "metadata"
        package = shipped.get(path)
        first = None
        if (
            change == "content"
            and a is not None
            and a.type == "file"
            and b is not None
            and b.type == "file"
        ):
            first = _first_difference(read_image(path), read_rebuild(path))
        if package is not None:
            cause = "package"
            explanation = f"shipped by {package}"
            if a is not None and a.type == "file":
                own = package_file(package, path)
                if own is not None:
                    sha = hashlib.sha256(own).hexdigest()
                    image_is = sha == a.sha256
                    rebuild_is = b is not None and sha == b.sha256
                    if image_is:
                        explanation += "; the image has the package's bytes"
                        explanation += "" if rebuild_is else ", the rebuild does not"
                    else:
                        explanation += "; the image's bytes are not the package's"
                        explanation += (
                            ", the rebuild's are" if rebuild_is else ", nor are the rebuild's"
                        )
        else:
            why = _generated(path)
            cause = "generated" if why else "unexplained"
            explanation = (
                f"written by {why}" if why else "no package ships it and nothing known writes it"
            )
        out.append(PathDifference(path, change, fields, fa, fb, cause, package, explanation, first))
    return out, Summary(len(paths) - len(out), len(paths))


def alpm_member(package: Path, path: str) -> bytes | None:
    """The bytes an Arch package file (``.pkg.tar.zst``, ...) ships at *path*."""
    from reprobuild.archives.arch.install import package_entries

    for entry in package_entries(package):
        name = entry.name.decode("utf-8", "surrogateescape").removeprefix("./").lstrip("/")
        if name == path and entry.type == b"0":
            return entry.read()
    return None


def deb_member(deb: Path, path: str) -> bytes | None:
    """The bytes a ``.deb`` ships at *path* (``usr/bin/jq``; merged-/usr aliases tried)."""
    from reprobuild.archives.debian.unpack import open_data
    from reprobuild.tree import TarReader

    wanted = {path}
    for d in _MERGED:
        if path.startswith(f"usr/{d}/"):
            wanted.add(path[4:])
    with deb.open("rb") as handle:
        for entry in TarReader(open_data(handle, deb)):
            name = entry.name.decode("utf-8", "surrogateescape")
            while name.startswith("./"):
                name = name[2:]
            name = name.lstrip("/")
            if name in wanted and entry.type == b"0":
                return entry.read()
    return None
