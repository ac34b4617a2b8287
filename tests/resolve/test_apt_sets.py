"""The resolver against apt on the real bookworm index.

The checked-in sets (tests/data/apt-sets/, written by make_apt_sets.py from
the real apt-get) are checked everywhere; where apt is installed the same
requests are also run through apt live, so the files cannot go stale.
"""

from __future__ import annotations

import pytest

from reprobuild.archives.debian.resolve import DebianUniverse, Request, resolve, seed_packages

from .apt_oracle import APT_SETS, AptRoot, read_set
from .make_apt_sets import apt_request
from .requests import REQUESTS

_LIVE_BY_DEFAULT = {
    "variant-essential",
    "variant-required",
    "mirror-set",
    "gawk-base-files",
    "python3-pip",
    "multi-request",
    "bash-pinned",
}


def _params(names: list[str], *, live: bool) -> list[object]:
    out: list[object] = []
    for name in names:
        marks: list[pytest.MarkDecorator] = []
        if live and name not in _LIVE_BY_DEFAULT:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _ours(universe: DebianUniverse, name: str) -> dict[str, str]:
    variant, packages = REQUESTS[name]
    res = resolve(universe, Request(packages, variant=variant))
    return {p.name: p.version for p in res.packages}


def test_every_request_has_a_checked_in_set() -> None:
    assert sorted(p.stem for p in APT_SETS.glob("*.txt")) == sorted(REQUESTS)


@pytest.mark.parametrize("name", _params(sorted(REQUESTS), live=False))
def test_matches_checked_in_apt_set(bookworm: DebianUniverse, name: str) -> None:
    assert _ours(bookworm, name) == read_set(APT_SETS / f"{name}.txt")


@pytest.mark.parametrize("name", _params(sorted(REQUESTS), live=True))
def test_matches_live_apt(bookworm: DebianUniverse, bookworm_apt: AptRoot, name: str) -> None:
    variant, packages = REQUESTS[name]
    apt = bookworm_apt.resolve(apt_request(bookworm, variant, packages))
    assert _ours(bookworm, name) == apt


@pytest.mark.parametrize(
    ("variant", "patterns"),
    [
        ("essential", ["?essential"]),
        ("required", ["?essential", "?priority(required)"]),
        ("important", ["?essential", "?priority(required)", "?priority(important)", "apt"]),
    ],
)
def test_variant_equals_apt_patterns(
    bookworm: DebianUniverse, bookworm_apt: AptRoot, variant: str, patterns: list[str]
) -> None:
    """mmdebstrap hands apt patterns, whose order is apt's; the sorted seed list agrees."""
    # apt counts itself as Essential unless told otherwise, as mmdebstrap does; the
    # option only takes effect in a cache built afresh (in memory here).
    no_cache = ["-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache="]
    apt = bookworm_apt.resolve(["-o", "pkgCacheGen::ForceEssential=,", *no_cache, *patterns])
    res = resolve(bookworm, Request((), variant=variant))
    assert {p.name: p.version for p in res.packages} == apt


def test_variants_nest(bookworm: DebianUniverse) -> None:
    sets = {
        v: {p.name for p in resolve(bookworm, Request((), variant=v)).packages}
        for v in ("essential", "required", "minbase", "important")
    }
    assert sets["essential"] < sets["required"] <= sets["minbase"] < sets["important"]
    assert "apt" in sets["minbase"]
    assert all(bookworm.candidates[n].essential for n, why in seed_packages(bookworm, "essential"))


def test_reasons(bookworm: DebianUniverse) -> None:
    res = resolve(bookworm, Request((), variant="essential"))
    assert res.reasons["base-files"] == "essential"
    assert res.reasons["mawk"] == "provides awk for base-files"
    res = resolve(bookworm, Request(("tmux",)))
    assert res.reasons["tmux"] == "requested"
    assert res.reasons["libevent-core-2.1-7"] == "Depends of tmux"
    assert res.reasons["gcc-12-base"] == "Depends of libgcc-s1"
    res = resolve(bookworm, Request(("bash",)))
    assert res.reasons["libtinfo6"] == "Pre-Depends of bash"
    assert set(res.reasons) == {p.name for p in res.packages}
    assert [p.name for p in res.packages] == sorted(p.name for p in res.packages)
