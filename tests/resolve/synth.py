"""Tiny synthetic Packages indexes, fed both to the resolver and to real apt."""

from __future__ import annotations

from reprobuild.archives.debian.index import parse_packages
from reprobuild.archives.debian.resolve import DebianUniverse


def stanza(name: str, version: str = "1", arch: str = "amd64", **fields: str) -> str:
    """One Packages stanza; keyword names map to fields (pre_depends -> Pre-Depends)."""
    lines = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}"]
    for key, value in fields.items():
        if value:
            lines.append(f"{key.replace('_', '-').title()}: {value}")
    lines += [
        f"Filename: pool/main/{name[0]}/{name}/{name}_{version}_{arch}.deb",
        "Size: 1000",
        "SHA256: " + "0" * 64,
    ]
    return "\n".join(lines) + "\n"


def index(*stanzas: str) -> bytes:
    return "\n".join(stanzas).encode()


def universe(*stanzas: str) -> DebianUniverse:
    return DebianUniverse.from_packages(parse_packages(index(*stanzas)))
