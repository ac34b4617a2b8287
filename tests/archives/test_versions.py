"""dpkg and pacman version order, checked against upstream's own test vectors."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reprobuild.archives.arch.versions import vercmp
from reprobuild.archives.debian.index import (
    DebianVersion,
    compare_versions,
    parse_debian_version,
    validate_debian_version,
)
from reprobuild.errors import VersionError

# From dpkg, scripts/t/Dpkg_Version.t (the __DATA__ section: "a b expected"),
# https://git.dpkg.org/git/dpkg/dpkg.git, GPL-2.0-or-later. Data only.
DPKG_VECTORS = """
1.0-1 2.0-2 -1
2.2~rc-4 2.2-1 -1
2.2-1 2.2~rc-4 1
1.0000-1 1.0-1 0
1 0:1 0
0 0:0-0 0
2:2.5 1:7.5 1
1:0foo 0foo 1
0:0foo 0foo 0
0foo 0foo 0
0foo- 0foo 0
0foo- 0foo-0 0
0foo 0fo 1
0foo- 0foo+ -1
0foo~1 0foo -1
0foo~foo+Bar 0foo~foo+bar -1
0foo~~ 0foo~ -1
1~ 1 -1
12345+that-really-is-some-ver-0 12345+that-really-is-some-ver-10 -1
0foo-0 0foo-01 -1
0foo.bar 0foobar 1
0foo.bar 0foo1bar 1
0foo.bar 0foo0bar 1
0foo1bar-1 0foobar-1 -1
0foo2.0 0foo2 1
0foo2.0.0 0foo2.10.0 -1
0foo2.0 0foo2.0.0 -1
0foo2.0 0foo2.10 -1
0foo2.1 0foo2.10 -1
1.09 1.9 0
1.0.8+nmu1 1.0.8 1
3.11 3.10+nmu1 1
0.9j-20080306-4 0.9i-20070324-2 1
1.2.0~b7-1 1.2.0~b6-1 1
1.011-1 1.06-2 1
0.0.9+dfsg1-1 0.0.8+dfsg1-3 1
4.6.99+svn6582-1 4.6.99+svn6496-1 1
53 52 1
0.9.9~pre122-1 0.9.9~pre111-1 1
2:2.3.2-2+lenny2 2:2.3.2-2 1
1:3.8.1-1 3.8.GA-1 1
1.0.1+gpl-1 1.0.1-2 1
1a 1000a -1
-0.6.5 0.9.1 -1
"""

# From dpkg, lib/dpkg/t/t-version.c (test_version_compare / test_version_parse):
# (epoch, upstream, revision) objects written back as strings. GPL-2.0-or-later.
DPKG_C_EQUAL = [
    ("0:0-0", "0-0"),
    ("0:0-00", "0:00-0"),
    ("1:2-3", "1:2-3"),
    ("0", "0:0"),
    ("0:0-", "0"),
    ("0:0.0-0.0", "0.0-0.0"),
    ("0:0-0-0", "0-0-0"),
    ("0:0:0-0", "0:0:0-0"),
    ("0:09azAZ.-+~:-0", "0:09azAZ.-+~:-0"),
    ("  \t0:0-1", "0-1"),
    ("0:0-1\t  ", "0-1"),
]
DPKG_C_ORDERED = [("0:0-0", "1:0-0"), ("0:a-0", "0:b-0"), ("0:0-a", "0:0-b"), ("1-1", "2-1")]
DPKG_C_PARSE = [
    ("0:0-0-0", DebianVersion(0, "0-0", "0")),
    ("0:0:0-0", DebianVersion(0, "0:0", "0")),
    ("0:0-0:0-0", DebianVersion(0, "0-0:0", "0")),
    ("0:0-azAZ09.+~", DebianVersion(0, "0", "azAZ09.+~")),
    ("5:1", DebianVersion(5, "1", "")),
]
DPKG_C_INVALID = [
    "",
    "  ",
    "0:",
    "0:0 0-1",
    "-1:0-1",
    "999999999999999999999999:0-1",
    "a:0-0",
    "A:0-0",
    "-0",
    "0:-0",
    "0:abc3-0",
    "0:0-0:0",
    *(f"0:0{c}-0" for c in "!#@$%&/|\\<>()[]{};,_=*^'"),
    *(f"0:0-{c}" for c in "!#@$%&/|\\<>()[]{}:;,_=*^'"),
]

# From pacman, test/util/vercmptest.sh (runtest ver1 ver2 expected),
# https://gitlab.archlinux.org/pacman/pacman, GPL-2.0-or-later. Data only.
PACMAN_VECTORS = """
1.5.0 1.5.0 0
1.5.1 1.5.0 1
1.5.1 1.5 1
1.5.0-1 1.5.0-1 0
1.5.0-1 1.5.0-2 -1
1.5.0-1 1.5.1-1 -1
1.5.0-2 1.5.1-1 -1
1.5-1 1.5.1-1 -1
1.5-2 1.5.1-1 -1
1.5-2 1.5.1-2 -1
1.5 1.5-1 0
1.5-1 1.5 0
1.1-1 1.1 0
1.0-1 1.1 -1
1.1-1 1.0 1
1.5b-1 1.5-1 -1
1.5b 1.5 -1
1.5b-1 1.5 -1
1.5b 1.5.1 -1
1.0a 1.0alpha -1
1.0alpha 1.0b -1
1.0b 1.0beta -1
1.0beta 1.0rc -1
1.0rc 1.0 -1
1.5.a 1.5 1
1.5.b 1.5.a 1
1.5.1 1.5.b 1
1.5.b-1 1.5.b 0
1.5-1 1.5.b -1
2.0 2_0 0
2.0_a 2_0.a 0
2.0a 2.0.a -1
2___a 2_a 1
0:1.0 0:1.0 0
0:1.0 0:1.1 -1
1:1.0 0:1.0 1
1:1.0 0:1.1 1
1:1.0 2:1.1 -1
1:1.0 0:1.0-1 1
1:1.0-1 0:1.1-1 1
0:1.0 1.0 0
0:1.0 1.1 -1
0:1.1 1.0 1
1:1.0 1.0 1
1:1.0 1.1 1
1:1.1 1.1 1
"""


def _vectors(text: str) -> list[tuple[str, str, int]]:
    rows = [line.split() for line in text.strip().splitlines()]
    return [(a, b, int(r)) for a, b, r in rows]


@pytest.mark.parametrize(("a", "b", "expected"), _vectors(DPKG_VECTORS))
def test_dpkg_vectors(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


@pytest.mark.parametrize(("a", "b"), DPKG_C_EQUAL)
def test_dpkg_c_equal(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0


@pytest.mark.parametrize(("a", "b"), DPKG_C_ORDERED)
def test_dpkg_c_ordered(a: str, b: str) -> None:
    assert compare_versions(a, b) == -1
    assert compare_versions(b, a) == 1


@pytest.mark.parametrize(("text", "expected"), DPKG_C_PARSE)
def test_dpkg_parse(text: str, expected: DebianVersion) -> None:
    assert validate_debian_version(text) == expected
    assert parse_debian_version(text) == expected


@pytest.mark.parametrize("text", DPKG_C_INVALID)
def test_dpkg_invalid(text: str) -> None:
    with pytest.raises(VersionError):
        validate_debian_version(text)


def test_debian_version_str_round_trips() -> None:
    assert str(parse_debian_version("1:2.3-4")) == "1:2.3-4"
    assert str(parse_debian_version("2.3")) == "2.3"


def test_compare_refuses_non_numeric_epoch() -> None:
    with pytest.raises(VersionError):
        compare_versions("a:1", "1")


@pytest.mark.parametrize(("a", "b", "expected"), _vectors(PACMAN_VECTORS))
def test_pacman_vectors(a: str, b: str, expected: int) -> None:
    assert vercmp(a, b) == expected
    assert vercmp(b, a) == -expected


# Property tests against the real tools, when installed (dpkg is on every Debian
# machine; vercmp comes with the pacman-package-manager package).
_DEB_ALPHABET = "0123456789abzAZ.+~"
_deb_part = st.text(_DEB_ALPHABET, min_size=1, max_size=8).map(lambda s: "1" + s)
_deb_version = st.builds(
    lambda e, u, r: f"{e}{u}{r}",
    st.sampled_from(["", "1:", "0:", "2:"]),
    _deb_part,
    st.one_of(st.just(""), st.text(_DEB_ALPHABET, min_size=1, max_size=5).map("-{}".format)),
)


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
@settings(max_examples=150, deadline=None)
@given(_deb_version, _deb_version)
def test_matches_dpkg(a: str, b: str) -> None:
    def holds(op: str) -> bool:
        proc = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False)
        return proc.returncode == 0

    expected = -1 if holds("lt") else (1 if holds("gt") else 0)
    assert compare_versions(a, b) == expected


_alpm_version = st.text("0123456789ab._-:+~", min_size=1, max_size=10)


@pytest.mark.skipif(shutil.which("vercmp") is None, reason="pacman's vercmp is not installed")
@settings(max_examples=150, deadline=None)
@given(_alpm_version, _alpm_version)
def test_matches_pacman_vercmp(a: str, b: str) -> None:
    out = subprocess.run(["vercmp", a, b], capture_output=True, text=True, check=True)
    expected = int(out.stdout)
    assert vercmp(a, b) == (expected > 0) - (expected < 0)


# Boundaries the upstream vectors above do not reach; `make mutate` found each
# (a mutant of versions.py that passed every test above). The expected values
# are dpkg's and pacman's own answers (`dpkg --compare-versions`, `vercmp`).


def test_dpkg_epoch_may_be_int_max_and_no_more() -> None:
    assert validate_debian_version("2147483647:1.0").epoch == 2**31 - 1
    with pytest.raises(VersionError, match="too big"):
        validate_debian_version("2147483648:1.0")


def test_dpkg_names_nothing_after_the_colon() -> None:
    # dpkg: "nothing after colon in version number", not "empty upstream version"
    with pytest.raises(VersionError, match="nothing after colon"):
        validate_debian_version("0:")


PACMAN_EDGES = [
    ("1.01", "1.1", 0),  # leading zeros of a number do not count...
    ("1.001", "1.01", 0),
    ("1.10", "1.1", 1),  # ...trailing ones do
    ("1-2", "1-1-3", -1),  # the release follows the last dash: 1 < 1-1
    ("1.0-1-1", "1.0-1", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), PACMAN_EDGES)
def test_pacman_edges(a: str, b: str, expected: int) -> None:
    assert vercmp(a, b) == expected
    assert vercmp(b, a) == -expected
