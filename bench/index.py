"""Benchmark: reprobuild's Packages parser against python-debian on a full index.

Usage: python bench/index.py [Packages.xz]   (default: the shared bookworm mirror)

Prints the best of several runs for reprobuild (decompress + parse, and parse
alone) and one run of python-debian's ``deb822.Packages.iter_paragraphs``
(several seconds), then the ratio. Exits 0 with a note when the index or
python-debian is unavailable, so ``make bench`` keeps working.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from reprobuild.archives.debian import IndexEntry, Release, parse_packages, read_packages

DEFAULT = (
    Path(__file__).resolve().parents[1].parent
    / "shared/mirrors/debian/archive/debian/20260711T101637Z/dists/bookworm/main/binary-amd64"
    / "Packages.xz"
)
RUNS = 5


def best_of(runs: int, fn: object) -> tuple[float, object]:
    assert callable(fn)
    best, result = float("inf"), None
    for _ in range(runs):
        result = None  # free the previous result outside the timed region
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not path.exists():
        print(f"bench/index.py: {path} not found; skipped")
        return 0
    data = path.read_bytes()
    text = lzma.decompress(data)
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
    t_read, pkgs = best_of(RUNS, lambda: read_packages(release, "Packages.xz", data))
    t_parse, _ = best_of(RUNS, lambda: parse_packages(text))
    assert isinstance(pkgs, tuple)
    print(f"index: {path} ({len(data):,} bytes xz, {len(text):,} bytes, {len(pkgs):,} stanzas)")
    print(f"reprobuild  check+decompress+parse: {t_read:6.3f} s (best of {RUNS})")
    print(f"reprobuild  parse only:             {t_parse:6.3f} s (best of {RUNS})")
    try:
        from debian import deb822  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("python-debian is not installed (pip install python-debian); no comparison")
        return 0
    start = time.perf_counter()
    count = sum(1 for _ in deb822.Packages.iter_paragraphs(io.BytesIO(text), use_apt_pkg=False))
    t_theirs = time.perf_counter() - start
    print(f"python-debian parse only:           {t_theirs:6.3f} s ({count:,} stanzas)")
    print(f"ratio (python-debian / reprobuild parse): {t_theirs / t_parse:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
