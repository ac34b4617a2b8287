"""apt's choices on tiny synthetic universes, each also checked against real apt."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprobuild.archives.debian.index import parse_packages
from reprobuild.archives.debian.resolve import DebianUniverse, Request, resolve
from reprobuild.errors import ResolveError

from .apt_oracle import AptRoot, apt_get
from .synth import index, stanza, universe

_needs_apt = pytest.mark.skipif(apt_get() is None, reason="apt-get is not installed")


def _ours(stanzas: tuple[str, ...], request: tuple[str, ...]) -> dict[str, str] | None:
    try:
        res = resolve(universe(*stanzas), Request(request))
    except ResolveError:
        return None
    return {p.name: p.version for p in res.packages}


def _apt(stanzas: tuple[str, ...], request: tuple[str, ...]) -> dict[str, str] | None:
    with tempfile.TemporaryDirectory() as tmp:
        root = AptRoot(Path(tmp), index(*stanzas))
        try:
            return root.resolve(request)
        except RuntimeError:
            return None


def check(stanzas: tuple[str, ...], request: tuple[str, ...], expected: set[str]) -> None:
    """The resolver installs ``expected`` and, where apt exists, so does apt."""
    ours = _ours(stanzas, request)
    assert ours is not None and set(ours) == expected
    if apt_get() is not None:
        assert _apt(stanzas, request) == ours


def test_first_installable_alternative() -> None:
    s = (stanza("a", depends="b | c"), stanza("b", depends="missing"), stanza("c"))
    check(s, ("a",), {"a", "c"})


def test_alternative_already_requested_wins() -> None:
    s = (stanza("a", depends="b | c"), stanza("b"), stanza("c"))
    check(s, ("a", "c"), {"a", "c"})
    check(s, ("a",), {"a", "b"})


def test_earlier_dependency_satisfies_later_alternative() -> None:
    s = (stanza("a", depends="x, b | c"), stanza("x", depends="c"), stanza("b"), stanza("c"))
    check(s, ("a",), {"a", "x", "c"})


def test_provider_priority_and_essential() -> None:
    s = (
        stanza("a", depends="v"),
        stanza("p1", provides="v", priority="optional"),
        stanza("p2", provides="v", priority="required"),
        stanza("p3", provides="v", priority="optional", essential="yes"),
    )
    check(s, ("a",), {"a", "p3"})
    check(s[:3], ("a",), {"a", "p2"})


def test_real_package_of_that_name_beats_providers() -> None:
    s = (
        stanza("a", depends="v"),
        stanza("p", provides="v", priority="required"),
        stanza("v", priority="optional"),
    )
    check(s, ("a",), {"a", "v"})


def test_equal_providers_prefer_the_one_apt_met_last() -> None:
    s = (
        stanza("a", depends="v"),
        stanza("p1", provides="v", priority="optional"),
        stanza("p2", provides="v", priority="optional"),
    )
    check(s, ("a",), {"a", "p2"})


def test_versioned_provides() -> None:
    s = (
        stanza("a", depends="v (>= 2)"),
        stanza("p1", provides="v (= 1)", priority="required"),
        stanza("p2", provides="v (= 2)", priority="optional"),
        stanza("p3", provides="v", priority="required"),
    )
    check(s, ("a",), {"a", "p2"})


def test_any_qualifier_needs_multi_arch_allowed() -> None:
    s = (stanza("a", depends="py:any"), stanza("py", multi_arch="allowed"))
    check(s, ("a",), {"a", "py"})
    s = (stanza("a", depends="py:any"), stanza("py"))
    assert _ours(s, ("a",)) is None


def test_arch_all_and_foreign_packages() -> None:
    s = (stanza("a", depends="d"), stanza("d", arch="all", multi_arch="foreign"))
    check(s, ("a",), {"a", "d"})


def test_candidate_is_highest_version_and_pins_pick_another() -> None:
    s = (
        stanza("a", "1.0", depends="b"),
        stanza("a", "1.10"),
        stanza("a", "1.2"),
        stanza("b"),
    )
    check(s, ("a",), {"a"})
    assert _ours(s, ("a",)) == {"a": "1.10"}
    assert _ours(s, ("a=1.0",)) == {"a": "1.0", "b": "1"}
    if apt_get() is not None:
        assert _apt(s, ("a=1.0",)) == {"a": "1.0", "b": "1"}


def test_duplicate_stanzas_from_several_suites() -> None:
    u = DebianUniverse.from_packages(parse_packages(index(stanza("a", "1"), stanza("a", "2"))) * 2)
    assert [p.version for p in u.versions("a")] == ["2", "1"]


def test_uninstallable_candidate_is_skipped_for_next_alternative() -> None:
    s = (
        stanza("a", depends="b | c"),
        stanza("b", depends="d (>= 2)"),
        stanza("d", "1"),
        stanza("c"),
    )
    check(s, ("a",), {"a", "c"})


def test_conflicting_dependency_is_not_chosen() -> None:
    s = (stanza("a", depends="b, c | d"), stanza("b"), stanza("c", conflicts="b"), stanza("d"))
    check(s, ("a",), {"a", "b", "d"})


# ------------------------------------------------------------------ property


_NAMES = [f"p{i}" for i in range(7)]
_VIRTUAL = ["v0", "v1"]


@st.composite
def _relation(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(_NAMES + _VIRTUAL + ["missing"]))
    op = draw(st.sampled_from(["", "", "", ">= 2", "<< 2", "= 1"]))
    return f"{name} ({op})" if op else name


@st.composite
def _universe(draw: st.DrawFn) -> tuple[str, ...]:
    stanzas = []
    for name in _NAMES:
        for version in draw(st.sampled_from([["1"], ["2"], ["1", "2"]])):
            groups = draw(st.lists(st.lists(_relation(), min_size=1, max_size=3), max_size=3))
            provides = draw(
                st.lists(st.sampled_from(["v0", "v1", "v0 (= 2)", "v1 (= 1)"]), max_size=2)
            )
            fields = {
                "depends": ", ".join(" | ".join(g) for g in groups),
                "provides": ", ".join(dict.fromkeys(provides)),
                "priority": draw(st.sampled_from(["", "required", "important", "optional"])),
                "essential": draw(st.sampled_from(["", "", "", "yes"])),
            }
            if draw(st.integers(0, 5)) == 0:
                fields["conflicts"] = draw(st.sampled_from(_NAMES + _VIRTUAL))
            if draw(st.integers(0, 5)) == 0:
                fields["breaks"] = draw(_relation())
            stanzas.append(stanza(name, version, **fields))
    return tuple(stanzas)


@_needs_apt
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    stanzas=_universe(),
    request=st.lists(st.sampled_from(_NAMES), min_size=1, max_size=3, unique=True),
)
def test_random_universes_match_apt(stanzas: tuple[str, ...], request: list[str]) -> None:
    """Whenever the resolver answers, apt installs exactly that set.

    The converse does not hold: where MarkInstall leaves a package broken
    (typically a dependency unmarked by another's Conflicts), apt runs its
    scoring problem resolver, which is not emulated; the resolver then
    refuses with an error instead of guessing.
    """
    ours = _ours(stanzas, tuple(request))
    if ours is not None:
        assert ours == _apt(stanzas, tuple(request))
