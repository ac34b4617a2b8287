#!/usr/bin/env python3
"""Parse and resolve the full bookworm index, against python-debian and apt.

Usage: ``bench/index.py [--quick] [Packages.xz]`` (default: the shared mirror's).

1. Parsing alone: reprobuild's Packages parser (best of RUNS) against
   python-debian's ``deb822.Packages.iter_paragraphs`` (one run, ~10 s).
2. Parse + resolve of a request (``REQUEST``, no recommends, empty system)
   against ``apt-get -s install`` with a private ``APT_CONFIG`` whose lists
   come from an ``apt-get update`` of the same snapshot served on loopback:

   * cold: reprobuild with an empty index cache (sha256 check, decompress,
     parse, universe, resolve) against apt-get without its ``pkgcache.bin``
     (apt parses its lists into a new binary cache, then resolves);
   * warm: reprobuild with its parsed-index cache against apt-get with its
     binary cache present.

   Goals: cold within 1.5x of apt, warm under 0.3 s. Both tools must choose
   the same packages (printed).

Exits 0 with a note when the index, python-debian or apt-get is missing, so
``make bench`` keeps working.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from _common import KEYRING, SHARED, SHARED_TS, machine, served

from reprobuild.archives.debian import lock as debian_lock
from reprobuild.archives.debian.index import IndexEntry, Release, parse_packages, read_packages
from reprobuild.archives.debian.resolve import DebianUniverse, Request, resolve

DEFAULT = SHARED / SHARED_TS / "dists/bookworm/main/binary-amd64/Packages.xz"
RUNS = 5
REQUEST = ("build-essential", "git", "python3", "openssh-server", "curl")
COLD_GOAL, WARM_GOAL = 1.5, 0.3
T = TypeVar("T")


def best_of(runs: int, fn: Callable[[], T]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(runs):
        result = None  # free the previous result outside the timed region
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    assert result is not None
    return best, result


def parsing(path: Path, data: bytes, text: bytes, runs: int) -> None:
    # A Release vouching for the file, so the timed path includes the sha256 check.
    release = Release(
        suite="bench",
        codename="bench",
        date=datetime.now(UTC),
        valid_until=None,
        architectures=("amd64",),
        components=("main",),
        sha256=(IndexEntry("Packages.xz", len(data), hashlib.sha256(data).hexdigest()),),
    )
    t_read, pkgs = best_of(runs, lambda: read_packages(release, "Packages.xz", data))
    t_parse, _ = best_of(runs, lambda: parse_packages(text))
    print(
        f"index: {path.name} ({len(data):,} bytes xz, {len(text):,} bytes, {len(pkgs):,} stanzas)"
    )
    print(f"reprobuild  check+decompress+parse: {t_read:6.3f} s (best of {runs})")
    print(f"reprobuild  parse only:             {t_parse:6.3f} s (best of {runs})")
    try:
        from debian import deb822  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("python-debian is not installed (pip install python-debian); no comparison")
        return
    start = time.perf_counter()
    count = sum(1 for _ in deb822.Packages.iter_paragraphs(io.BytesIO(text), use_apt_pkg=False))
    t_theirs = time.perf_counter() - start
    print(f"python-debian parse only:           {t_theirs:6.3f} s ({count:,} stanzas)")
    print(f"ratio (python-debian / reprobuild parse): {t_theirs / t_parse:.1f}x")


def ours(data: bytes, sha256: str) -> tuple[str, ...]:
    """What ``reprobuild lock`` does for a Debian snapshot once Release is verified."""
    packages = debian_lock._parsed_index(data, "main/binary-amd64/Packages.xz", sha256)
    universe = DebianUniverse.from_packages(packages, "amd64")
    return resolve(universe, Request(packages=REQUEST)).names()


def apt_root(work: Path, url: str) -> dict[str, str]:
    """A private apt configuration and an ``apt-get update`` of the snapshot."""
    for d in (
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/lib/dpkg",
        "var/log/apt",
    ):
        (work / d).mkdir(parents=True, exist_ok=True)
    (work / "var/lib/dpkg/status").write_text("")
    (work / "etc/apt/sources.list").write_text(
        f"deb [signed-by={KEYRING}] {url}{SHARED_TS} bookworm main\n"
    )
    (work / "apt.conf").write_text(
        f'Dir "{work}/";\n'
        f'Dir::State::status "{work}/var/lib/dpkg/status";\n'
        'APT::Architecture "amd64";\n'
        'APT::Architectures { "amd64"; };\n'
        'Acquire::Check-Valid-Until "false";\n'
        'Acquire::Languages "none";\n'
        'APT::Install-Recommends "false";\n'
        'Debug::NoLocking "true";\n'
    )
    env = {**os.environ, "APT_CONFIG": str(work / "apt.conf"), "LC_ALL": "C"}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
    return env


def theirs(env: dict[str, str], work: Path, cold: bool) -> tuple[str, ...]:
    if cold:
        for name in ("pkgcache.bin", "srcpkgcache.bin"):
            (work / "var/cache/apt" / name).unlink(missing_ok=True)
    out = subprocess.run(
        ["apt-get", "-s", "install", "--no-install-recommends", *REQUEST],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return tuple(sorted(m.group(1) for m in re.finditer(r"^Inst (\S+)", out, re.M)))


def resolving(data: bytes, runs: int) -> None:
    if shutil.which("apt-get") is None:
        print("apt-get is not installed; no resolution comparison")
        return
    sha = hashlib.sha256(data).hexdigest()
    with (
        tempfile.TemporaryDirectory(prefix="bench-index-") as tmp,
        served(SHARED) as url,
    ):
        work = Path(tmp)
        env = apt_root(work / "apt", url)
        saved = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(work / "cache")
        try:

            def cold_ours() -> tuple[str, ...]:
                shutil.rmtree(work / "cache", ignore_errors=True)
                return ours(data, sha)

            t_cold, names = best_of(runs, cold_ours)
            t_warm, warm_names = best_of(runs, lambda: ours(data, sha))
        finally:
            if saved is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = saved
        a_cold, apt_names = best_of(runs, lambda: theirs(env, work / "apt", True))
        a_warm, _ = best_of(runs, lambda: theirs(env, work / "apt", False))
    print(f"request: {' '.join(REQUEST)} (no recommends, empty system), best of {runs}")
    print(f"apt-get -s install, cold (no pkgcache.bin): {a_cold:6.3f} s")
    print(f"apt-get -s install, warm:                   {a_warm:6.3f} s")
    print(
        f"reprobuild cold (check+decompress+parse+resolve): {t_cold:6.3f} s   "
        f"ratio to apt cold {t_cold / a_cold:.2f}x (goal <= {COLD_GOAL}x)"
    )
    print(
        f"reprobuild warm (cached parse + resolve):          {t_warm:6.3f} s   "
        f"(goal < {WARM_GOAL} s; apt warm {a_warm:.3f} s)"
    )
    same = names == warm_names == apt_names
    print(f"same {len(names)} packages as apt: {'yes' if same else 'NO'}")
    if not same:
        print(f"  only reprobuild: {sorted(set(names) - set(apt_names))}")
        print(f"  only apt: {sorted(set(apt_names) - set(names))}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds, no python-debian run")
    p.add_argument("index", nargs="?", type=Path, default=DEFAULT)
    a = p.parse_args()
    if not a.index.exists():
        print(f"bench/index.py: {a.index} not found; skipped")
        return 0
    runs = 2 if a.quick else RUNS
    print(f"machine: {machine()}")
    data = a.index.read_bytes()
    text = lzma.decompress(data)
    if not a.quick:
        parsing(a.index, data, text, runs)
    if a.index == DEFAULT:
        resolving(data, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
