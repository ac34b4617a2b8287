"""``reprobuild status``: what a rebuilderd instance says about every locked package.

Like Arch Linux's ``arch-repro-status``: one query of rebuilderd's v0 API
(``GET /api/v0/pkgs/list?distro=...``, a JSON list of package releases with
``name``, ``version``, ``architecture``, ``status`` GOOD/BAD/UNKWN,
``build_id`` and ``has_diffoscope``) matched against the lockfile's packages.

A rebuilderd instance is another party's server, so its answer is input: any
JSON not of that shape is a FetchError (exit 2) naming the URL; an answer is
read up to ``REPROBUILD_REBUILDERD_MAX_SIZE`` bytes (default 64M); the whole
query has one deadline, ``REPROBUILD_REBUILDERD_DEADLINE`` seconds (default
120, retries included); and the fields that are printed lose their control
characters (no terminal escape sequence reaches the user's terminal).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from reprobuild.errors import FetchError, IntegrityError
from reprobuild.fetch import Fetcher
from reprobuild.lockfile import Lockfile
from reprobuild.redact import redact
from reprobuild.sandbox_limits import _parse as _parse_setting

DISTRO = {"deb": "debian", "alpm": "archlinux"}
SETTINGS: Final = {
    "max_size": ("REPROBUILD_REBUILDERD_MAX_SIZE", "64M"),
    "deadline": ("REPROBUILD_REBUILDERD_DEADLINE", "120"),
}
# C0 and C1 controls and DEL: ESC sequences, carriage returns, bells
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class StatusLimits:
    """How much and how long a rebuilderd instance may make us read."""

    max_size: int = 64 << 20
    deadline: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StatusLimits:
        env = os.environ if environ is None else environ
        values = {
            field: _parse_setting(name, env.get(name) or default, size=field == "max_size")
            for field, (name, default) in SETTINGS.items()
        }
        return cls(max_size=values["max_size"], deadline=float(values["deadline"]))


def printable(text: str) -> str:
    """``text`` without control characters: safe to print on a terminal."""
    return _CONTROL.sub("", text)


@dataclass(frozen=True)
class PackageStatus:
    name: str
    version: str
    architecture: str
    status: str  # GOOD, BAD, UNKWN, or MISSING (the rebuilder does not know it)
    diffoscope: str | None = None


@dataclass(frozen=True)
class StatusReport:
    packages: tuple[PackageStatus, ...]

    @property
    def good(self) -> int:
        return sum(1 for p in self.packages if p.status == "GOOD")

    def summary(self) -> str:
        total = len(self.packages)
        pct = 100.0 * self.good / total if total else 100.0
        return f"{self.good}/{total} packages reproducible ({pct:.1f}%)"


def status(
    lock: Lockfile,
    rebuilder: str,
    fetcher: Fetcher | None = None,
    limits: StatusLimits | None = None,
) -> StatusReport:
    fetcher = fetcher or Fetcher()
    limits = limits or StatusLimits.from_env()
    deadline = time.monotonic() + limits.deadline
    base = rebuilder.rstrip("/")
    formats = {s.name: s.format for s in lock.snapshots}
    known: dict[tuple[str, str, str], dict[str, Any]] = {}
    for distro in sorted({DISTRO.get(f, f) for f in formats.values()}):
        url = f"{base}/api/v0/pkgs/list?{urlencode({'distro': distro})}"
        try:
            data = fetcher.get(url, max_size=limits.max_size, deadline=deadline).data
        except IntegrityError:
            raise FetchError(
                f"{redact(url)}: the answer is larger than {limits.max_size} bytes",
                hint="raise REPROBUILD_REBUILDERD_MAX_SIZE if this rebuilder is that large",
            ) from None
        for release in _releases(data, url):
            known[(release["name"], release["version"], release["architecture"])] = release
    out = []
    for pkg in sorted(lock.packages):
        r = known.get((pkg.name, pkg.version, pkg.architecture))
        if r is None:
            out.append(PackageStatus(pkg.name, pkg.version, pkg.architecture, "MISSING"))
            continue
        link = None
        if r.get("has_diffoscope") is True and isinstance(r.get("build_id"), int):
            link = f"{base}/api/v0/builds/{r['build_id']}/diffoscope"
        out.append(
            PackageStatus(pkg.name, pkg.version, pkg.architecture, printable(r["status"]), link)
        )
    return StatusReport(tuple(out))


def _releases(data: bytes, url: str) -> list[dict[str, Any]]:
    """rebuilderd's list of package releases, each checked for the fields used."""

    def refuse(why: str) -> FetchError:
        return FetchError(
            f"{redact(url)}: not a rebuilderd JSON answer ({why})",
            hint="is --rebuilder the base URL of a rebuilderd instance?",
        )

    try:
        releases = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise refuse(str(exc)[:200]) from None
    if not isinstance(releases, list):
        raise refuse(f"a JSON {type(releases).__name__}, not a list of package releases")
    for i, r in enumerate(releases):
        if not isinstance(r, dict):
            raise refuse(f"item {i} is a JSON {type(r).__name__}, not an object")
        for name in ("name", "version", "architecture", "status"):
            if not isinstance(r.get(name), str):
                raise refuse(f"item {i} has no string {name!r}")
    return releases
