"""Property tests against real apt: several suites in one snapshot, several versions of a name.

A snapshot may combine suites (``bookworm`` + ``bookworm-updates``), each with
its own Packages index; the same name then has one version in one suite and a
newer one in the other, with other dependencies, and identical stanzas appear
in both. hypothesis draws such pairs of indexes; reprobuild resolves the
combined universe as ``lock`` builds it (suite by suite), and apt is given the
two indexes as two sources. Whenever reprobuild answers, apt must install
exactly that set at those versions (the converse is not required: apt's
problem resolver, which reprobuild does not emulate, can rescue requests
reprobuild refuses; see test_semantics.py).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprobuild.archives.debian.resolve import Request, resolve
from reprobuild.errors import ResolveError

from .apt_oracle import AptRoot, apt_get
from .synth import index, stanza, universe

pytestmark = pytest.mark.skipif(apt_get() is None, reason="apt-get is not installed")

NAMES = [f"p{i}" for i in range(5)]
SUITES = ("bookworm", "bookworm-updates")


def apt(suites: dict[str, tuple[str, ...]], request: tuple[str, ...]) -> dict[str, str] | None:
    with tempfile.TemporaryDirectory(prefix="rb-apt-") as tmp:
        root = Path(tmp)
        first, *others = suites
        apt_root = AptRoot(root, index(*suites[first]))
        lists = root / "var/lib/apt/lists"
        release = (lists / "127.0.0.1_debian_dists_bookworm_Release").read_text()
        sources = root / "etc/apt/sources.list"
        for suite in others:
            (lists / f"127.0.0.1_debian_dists_{suite}_main_binary-amd64_Packages").write_bytes(
                index(*suites[suite])
            )
            (lists / f"127.0.0.1_debian_dists_{suite}_Release").write_text(
                release.replace("Suite: oldstable", f"Suite: {suite}").replace(
                    "Codename: bookworm", f"Codename: {suite}"
                )
            )
            sources.write_text(
                sources.read_text() + f"deb [trusted=yes] http://127.0.0.1/debian {suite} main\n"
            )
        try:
            return apt_root.resolve(request)
        except RuntimeError:
            return None


def ours(suites: dict[str, tuple[str, ...]], request: tuple[str, ...]) -> dict[str, str] | None:
    try:
        res = resolve(universe(*(s for suite in SUITES for s in suites[suite])), Request(request))
    except ResolveError:
        return None
    return {p.name: p.version for p in res.packages}


def _relation(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from([*NAMES, "v0", "missing"]))
    op = draw(st.sampled_from(["", "", ">= 2", "<< 2", "= 1", ">> 1", "<= 2"]))
    return f"{name} ({op})" if op else name


def _stanza(draw: st.DrawFn, name: str, version: str) -> str:
    groups = draw(st.lists(st.lists(st.composite(_relation)(), min_size=1, max_size=2), max_size=3))
    provides = draw(st.lists(st.sampled_from(["v0", "v0 (= 1)", "v0 (= 2)"]), max_size=1))
    return stanza(
        name,
        version,
        depends=", ".join(" | ".join(g) for g in groups),
        provides=", ".join(provides),
        priority=draw(st.sampled_from(["optional", "optional", "required"])),
    )


@st.composite
def two_suites(draw: st.DrawFn) -> dict[str, tuple[str, ...]]:
    """A release and its updates: updates hold newer versions of some names, and
    sometimes the release's own stanza again (apt merges identical versions)."""
    base: dict[str, str] = {}
    release = []
    for name in NAMES:
        for version in draw(st.sampled_from([["1"], ["2"], ["1", "2"]])):
            text = _stanza(draw, name, version)
            release.append(text)
            base[name] = text
    updates = []
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3)):
        if draw(st.booleans()):
            updates.append(base[name])  # the same version and stanza in both suites
        else:
            updates.append(_stanza(draw, name, draw(st.sampled_from(["2", "3", "2+deb12u1"]))))
    return {"bookworm": tuple(release), "bookworm-updates": tuple(updates)}


CASES = {
    # The newer version from the updates suite is the candidate, with its own dependencies.
    "updates win": (
        {
            "bookworm": (stanza("p0", "1", depends="p1"), stanza("p1", "1"), stanza("p2", "1")),
            "bookworm-updates": (stanza("p0", "1+deb12u1", depends="p2 (>= 1)"),),
        },
        ("p0",),
        {"p0": "1+deb12u1", "p2": "1"},
    ),
    # An alternative whose candidate is too old is passed over for the next one.
    "versioned alternative": (
        {
            "bookworm": (stanza("p0", "1", depends="p1 (>= 3) | p2"), stanza("p2", "1")),
            "bookworm-updates": (stanza("p1", "2"),),
        },
        ("p0",),
        {"p0": "1", "p2": "1"},
    ),
    # Only the release's older version meets the dependency: apt keeps the newer
    # candidate and cannot install; reprobuild must not fall back to the old one.
    "no fallback to an older version": (
        {
            "bookworm": (stanza("p0", "1", depends="p1 (<< 2)"), stanza("p1", "1")),
            "bookworm-updates": (stanza("p1", "2"),),
        },
        ("p0",),
        None,
    ),
    # The same stanza in both suites is one package.
    "identical in both suites": (
        {"bookworm": (stanza("p0", "1", depends="p1"), stanza("p1", "1")),
         "bookworm-updates": (stanza("p1", "1"),)},
        ("p0",),
        {"p0": "1", "p1": "1"},
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_chosen_cases_agree_with_apt_both_ways(case: str) -> None:
    suites, request, expected = CASES[case]
    assert ours(suites, request) == expected
    assert apt(suites, request) == expected


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    suites=two_suites(),
    request=st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True),
)
def test_two_suites_several_versions_match_apt(
    suites: dict[str, tuple[str, ...]], request: list[str]
) -> None:
    mine = ours(suites, tuple(request))
    if mine is not None:
        assert mine == apt(suites, tuple(request)), (suites, request)
