"""Regenerate tests/data/apt-sets/ from the real apt-get (run on a machine with apt).

    .venv/bin/python -m tests.resolve.make_apt_sets [NAME ...]

Each file records what ``apt-get -s install --no-install-recommends`` installs
on an empty system from the bookworm test index, so the resolver's tests can
check apt's answers where apt is not installed (CI on other systems).
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reprobuild.archives.debian.index import decompress_index, parse_packages
from reprobuild.archives.debian.resolve import DebianUniverse, seed_packages
from tests.resolve.apt_oracle import APT_SETS, PACKAGES_XZ, AptRoot, apt_get, format_set
from tests.resolve.requests import REQUESTS


def apt_request(universe: DebianUniverse, variant: str, packages: tuple[str, ...]) -> list[str]:
    """The command-line package list apt is given for a request."""
    seeds = [name for name, _ in seed_packages(universe, variant)]
    return seeds + [p for p in packages if p not in seeds]


def main(argv: list[str]) -> int:
    if apt_get() is None:
        print("apt-get is not installed", file=sys.stderr)
        return 1
    names = argv or sorted(REQUESTS)
    data = decompress_index(PACKAGES_XZ.name, PACKAGES_XZ.read_bytes())
    universe = DebianUniverse.from_packages(parse_packages(data))
    APT_SETS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = AptRoot(Path(tmp), data)
        root.install(["base-files"])  # builds apt's cache once, before the parallel runs

        def one(name: str) -> str:
            variant, packages = REQUESTS[name]
            request = apt_request(universe, variant, packages)
            result = root.resolve(request)
            shown = [f"--variant={variant}", *packages] if variant != "none" else list(packages)
            (APT_SETS / f"{name}.txt").write_text(format_set(shown, result))
            return f"{name}: {len(result)} packages"

        with ThreadPoolExecutor(8) as pool:
            for line in pool.map(one, names):
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
