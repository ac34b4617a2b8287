"""Errors a user can act on: conflicts, unknown names, versions, architectures."""

from __future__ import annotations

import pytest

from reprobuild.archives.debian.resolve import (
    ConflictError,
    DebianUniverse,
    Request,
    UnknownPackageError,
    UnsatisfiableError,
    resolve,
)
from reprobuild.errors import ResolveError

from .synth import stanza, universe


def test_busybox_conflicts_with_busybox_static(bookworm: DebianUniverse) -> None:
    with pytest.raises(ConflictError) as err:
        resolve(bookworm, Request(("busybox", "busybox-static")))
    msg = err.value.message
    assert "busybox-static" in msg and "busybox " in msg and "Conflicts" in msg
    assert err.value.exit_code == 2


def test_unknown_package_suggests_close_names(bookworm: DebianUniverse) -> None:
    with pytest.raises(UnknownPackageError) as err:
        resolve(bookworm, Request(("tmuxx",)))
    assert "tmuxx" in err.value.message
    assert err.value.hint is not None and "did you mean" in err.value.hint
    assert "tmux" in err.value.hint


def test_pinned_version_that_does_not_exist(bookworm: DebianUniverse) -> None:
    with pytest.raises(UnknownPackageError) as err:
        resolve(bookworm, Request(("bash=9.9-1",)))
    assert "9.9-1" in err.value.message and "bash" in err.value.message
    assert err.value.hint is not None and "5.2.15-2+b13" in err.value.hint


def test_unsatisfiable_versioned_dependency() -> None:
    u = universe(stanza("a", depends="libfoo (>= 2.0)"), stanza("libfoo", "1.5"))
    with pytest.raises(UnsatisfiableError) as err:
        resolve(u, Request(("a",)))
    msg = err.value.message
    assert "libfoo (>= 2.0)" in msg and "1.5" in msg and msg.startswith("cannot install a")


def test_unsatisfiable_deep_dependency_names_the_chain() -> None:
    u = universe(stanza("a", depends="b"), stanza("b", depends="c (>> 1)"), stanza("c", "1"))
    with pytest.raises(UnsatisfiableError) as err:
        resolve(u, Request(("a",)))
    assert "c (>> 1)" in err.value.message


def test_conflict_through_provides() -> None:
    u = universe(stanza("a", conflicts="mta"), stanza("b", provides="mta"))
    with pytest.raises(ConflictError) as err:
        resolve(u, Request(("a", "b")))
    assert "a" in err.value.message and "b" in err.value.message and "mta" in err.value.message


def test_breaks_between_requests() -> None:
    u = universe(stanza("a", breaks="b (<< 2)"), stanza("b", "1"))
    with pytest.raises(ConflictError, match="Breaks: b"):
        resolve(u, Request(("a", "b")))


def test_self_conflict_through_own_provides_is_ignored() -> None:
    u = universe(stanza("a", provides="x", conflicts="x, a"))
    assert [p.name for p in resolve(u, Request(("a",))).packages] == ["a"]


def test_package_of_another_architecture() -> None:
    u = universe(stanza("a", arch="arm64"), stanza("b"))
    with pytest.raises(UnknownPackageError, match="not available for architecture amd64"):
        resolve(u, Request(("a",)))
    with pytest.raises(UnknownPackageError, match="architecture amd64 only"):
        resolve(u, Request(("b:i386",)))
    assert resolve(u, Request(("b:amd64",))).reasons == {"b": "requested"}


def test_virtual_package_requests() -> None:
    u = universe(stanza("p1", provides="v"), stanza("p2", provides="v"), stanza("q", provides="w"))
    with pytest.raises(UnknownPackageError, match="virtual package provided by p1, p2"):
        resolve(u, Request(("v",)))
    res = resolve(u, Request(("w",)))
    assert res.reasons == {"q": "requested (provides w)"}


def test_unknown_variant_and_architecture_mismatch() -> None:
    u = universe(stanza("a"))
    with pytest.raises(ResolveError, match="unknown variant"):
        resolve(u, Request(("a",), variant="maximal"))
    with pytest.raises(ResolveError, match="arm64"):
        resolve(u, Request(("a",), architecture="arm64"))
