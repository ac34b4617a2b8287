"""``reprobuild status``: what a rebuilderd instance says about every locked package.

Like Arch Linux's ``arch-repro-status``: one query of rebuilderd's v0 API
(``GET /api/v0/pkgs/list?distro=...``, a JSON list of package releases with
``name``, ``version``, ``architecture``, ``status`` GOOD/BAD/UNKWN,
``build_id`` and ``has_diffoscope``) matched against the lockfile's packages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from reprobuild.archives import for_snapshot
from reprobuild.errors import FetchError
from reprobuild.fetch import Fetcher
from reprobuild.lockfile import Lockfile


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


def status(lock: Lockfile, rebuilder: str, fetcher: Fetcher | None = None) -> StatusReport:
    fetcher = fetcher or Fetcher()
    base = rebuilder.rstrip("/")
    known: dict[tuple[str, str, str], dict[str, Any]] = {}
    for distro in sorted({for_snapshot(s).rebuilderd for s in lock.snapshots}):
        url = f"{base}/api/v0/pkgs/list?{urlencode({'distro': distro})}"
        try:
            releases = json.loads(fetcher.get(url).data)
        except ValueError as exc:
            raise FetchError(f"{url}: not a rebuilderd JSON answer ({exc})") from None
        for r in releases:
            known[(r["name"], r["version"], r["architecture"])] = r
    out = []
    for pkg in sorted(lock.packages):
        r = known.get((pkg.name, pkg.version, pkg.architecture))
        if r is None:
            out.append(PackageStatus(pkg.name, pkg.version, pkg.architecture, "MISSING"))
            continue
        link = None
        if r.get("has_diffoscope") and r.get("build_id") is not None:
            link = f"{base}/api/v0/builds/{r['build_id']}/diffoscope"
        out.append(PackageStatus(pkg.name, pkg.version, pkg.architecture, str(r["status"]), link))
    return StatusReport(tuple(out))
