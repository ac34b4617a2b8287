"""``lock`` against pacman itself on the real core and extra databases of 2022-09-12.

Each request is locked as a user locks it (a recipe, ``--mirror`` pointing at
the archive's root, the shipped archlinux keyring checking every chosen
package's real signature), and the lockfile's set is compared with what
pacman 6 would install on an empty root. ``make test-long`` takes every
package of both databases as a single target.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.archives.arch.lock import ArchSnapshot, ArchSnapshots
from reprobuild.errors import ResolveError
from reprobuild.locking import Sources

from .pacman import ARCHIVE_2022, REPOS_2022, Answer, Pacman, db_2022

# Requests pacman answers with -Sp (no conflicts among the packages).
REQUESTS = [
    ["base"],
    ["base-devel"],  # a group
    ["vim"],
    ["linux"],
    ["systemd"],
    ["python"],
    ["gcc", "make"],
    ["openssh", "sudo"],
    ["xorg"],  # a group of 200 packages
    ["sh"],  # a provided name
    ["libncursesw.so"],  # a soname
    ["java-runtime"],  # several providers: pacman's first
    ["libgl"],
    ["python>=3.10"],  # a versioned target
    ["core/linux"],  # a repository named
    ["extra/vim", "core/bash"],
    ["python2", "python"],  # a versioned conflict that does not apply
    ["xorg-server", "nvidia-utils"],
    ["base", "linux", "linux-firmware"],
    ["dmraid"],
    ["pacman", "archlinux-keyring"],
    ["gnupg", "curl", "git"],
]
# Requests whose packages conflict: pacman -S drops or refuses.
CONFLICTS = [
    ["iptables-nft", "iptables"],
    ["iptables", "iptables-nft"],
    ["systemd-resolvconf", "openresolv"],
    ["bubblewrap", "bubblewrap-suid"],
    ["mesa", "mesa-amber"],
    ["base", "iptables-nft"],  # base pulls iptables; iptables-nft replaces it
    ["libreoffice-fresh", "libreoffice-still"],  # refused: neither provides the other
    ["llvm11", "llvm"],
]
# Requests both refuse (the 2022 community repository is not in the fixture).
REFUSED = [["gnome"], ["bash>=6"], ["nonexistent-package"]]


@pytest.fixture(scope="module")
def pacman(tmp_path_factory: pytest.TempPathFactory) -> Pacman:
    return Pacman(tmp_path_factory.mktemp("pacman"), [(r, db_2022(r)) for r in REPOS_2022])


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private parse cache: the first lock parses, the others read the cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


def lock(tmp: Path, targets: list[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    quoted = " ".join(f'"{t}"' for t in targets)
    recipe = tmp / "r.repro"
    recipe.write_text(
        'let snap = snapshot { archive = "archlinux"; date = "2022-09-12"; '
        'repos = [ "core" "extra" ]; };\n'
        f'in {{ t = tarball {{ root = rootfs {{ snapshot = snap; variant = "none"; '
        f"packages = [ {quoted} ]; }}; }}; }}\n"
    )
    # The archive's root (not its repos/ directory): both are accepted.
    # Old snapshot: some packagers' keys were retired since (see alpm_trust).
    sources = Sources.from_env(
        mirrors=[f"archlinux={ARCHIVE_2022.as_uri()}/"], environ={}, allow_expired=True
    )
    result = api.lock(recipe, sources=sources, update=True)
    found = frozenset(
        f"{p.name} {p.version}" for p in result.lockfile.packages if p.fingerprint is not None
    )
    assert len(found) == len(result.lockfile.packages)  # every package signed, key pinned
    return found, result.warnings


def _same(tmp: Path, targets: list[str], answer: Answer) -> None:
    if answer.packages is None:
        with pytest.raises(ResolveError):
            lock(tmp, targets)
        return
    found, warnings = lock(tmp, targets)
    assert found == answer.packages
    assert warnings == answer.warnings


@pytest.mark.parametrize("targets", REQUESTS, ids="+".join)
def test_lock_equals_pacman(
    targets: list[str], pacman: Pacman, cache: None, tmp_path: Path
) -> None:
    answer = pacman.print_set(targets)
    assert answer.packages is not None, answer.output
    _same(tmp_path, targets, answer)


@pytest.mark.parametrize("targets", CONFLICTS, ids="+".join)
def test_conflicting_targets_as_pacman(
    targets: list[str], pacman: Pacman, cache: None, tmp_path: Path
) -> None:
    answer = pacman.install_set(targets)
    if answer.packages is None:
        assert "are in conflict" in answer.output, answer.output
        with pytest.raises(ResolveError, match="are in conflict"):
            lock(tmp_path, targets)
        return
    _same(tmp_path, targets, answer)


def test_pacman_warning_is_printed_by_lock(tmp_path: Path, cache: None) -> None:
    from tests.support.cli import reprobuild as rb

    db_2022("core")
    (tmp_path / "r.repro").write_text(
        'let snap = snapshot { archive = "archlinux"; date = "2022-09-12"; '
        'repos = [ "core" "extra" ]; };\n'
        'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; '
        'packages = [ "iptables-nft" "iptables" ]; }; }; }\n'
    )
    r = rb(
        tmp_path,
        "lock",
        "--mirror",
        f"archlinux={ARCHIVE_2022.as_uri()}/repos/",
        "--allow-expired",
        "r.repro",
        env={"XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]},
    )
    assert r.returncode == 0, r.stderr
    assert (
        "warning: removing 'iptables' from target list because it conflicts with "
        "'iptables-nft'" in r.stderr
    )


@pytest.mark.parametrize("targets", REFUSED, ids="+".join)
def test_refused_by_both(targets: list[str], pacman: Pacman, cache: None, tmp_path: Path) -> None:
    assert pacman.print_set(targets).packages is None
    with pytest.raises(ResolveError):
        lock(tmp_path, targets)


def test_a_failing_subtree_is_not_retried(tmp_path: Path, cache: None) -> None:
    """kde-applications-meta needs packages of the (absent) community repository
    through many paths: pacman retries the failing subtree each time and runs for
    more than ten minutes before refusing; lock refuses at the first failure."""
    db_2022("extra")
    with pytest.raises(ResolveError, match="cannot satisfy"):
        lock(tmp_path, ["kde-applications-meta"])


@pytest.mark.slow
def test_every_package_alone_as_pacman(pacman: Pacman, tmp_path: Path) -> None:
    """Every package of core and extra as the single target of a lock.

    Where pacman does not answer within PACMAN_TIMEOUT (its exponential
    retries, see the test above), lock must refuse: one unsatisfiable
    dependency always ends in pacman's refusal too. Those targets are listed.
    """
    from reprobuild.archives.arch.lock import lock_rootfs
    from reprobuild.fetch import Fetcher

    snap = _snapshot(tmp_path)
    sources = Sources.from_env(environ={}, allow_expired=True)
    names = sorted({n for repo in snap.repos for n in repo.db.names()})
    assert len(names) > 3000
    differ, unanswered = [], []
    for name in names:
        try:
            got = frozenset(
                f"{p.name} {p.version}"
                for p in lock_rootfs(
                    {"packages": [name]}, [snap], fetcher=Fetcher(), sources=sources
                )
            )
        except ResolveError:
            got = None
        answer = pacman.print_set([name], timeout=PACMAN_TIMEOUT)
        if answer.timed_out:
            unanswered.append(name)
            if got is not None:
                differ.append(name)
        elif got != answer.packages:
            differ.append(name)
    print(f"{len(names)} targets; pacman did not answer within {PACMAN_TIMEOUT} s: {unanswered}")
    assert differ == []


PACMAN_TIMEOUT = 120


def _snapshot(tmp: Path) -> ArchSnapshot:
    from reprobuild.fetch import Fetcher

    sources = Sources.from_env(mirrors=[f"archlinux={ARCHIVE_2022.as_uri()}/"], environ={})
    params = {"archive": "archlinux", "date": "2022-09-12", "repos": list(REPOS_2022)}
    return ArchSnapshots(Fetcher(), sources, tmp / "cache").acquire("snap", params, "0" * 64)


def test_keys_retired_since_need_allow_expired(tmp_path: Path, cache: None) -> None:
    """pacman with today's keyring refuses packages whose packager key was retired
    since they were signed; an old snapshot takes them with --allow-expired."""
    from reprobuild.errors import SignatureError

    db_2022("core")
    (tmp_path / "r.repro").write_text(
        'let snap = snapshot { archive = "archlinux"; date = "2022-09-12"; '
        'repos = [ "core" ]; };\n'
        'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; '
        'packages = [ "audit" ]; }; }; }\n'
    )
    mirror = [f"archlinux={ARCHIVE_2022.as_uri()}/"]
    with pytest.raises(SignatureError) as info:
        api.lock(tmp_path / "r.repro", sources=Sources.from_env(mirrors=mirror, environ={}))
    assert "package audit 3.0.8-1 (core)" in info.value.message
    assert "7258734B41C31549" in info.value.message and "revoked" in info.value.message
    assert "--allow-expired" in (info.value.hint or "")
    sources = Sources.from_env(mirrors=mirror, environ={}, allow_expired=True)
    lock = api.lock(tmp_path / "r.repro", sources=sources).lockfile
    (audit,) = (p for p in lock.packages if p.name == "audit")
    assert audit.fingerprint == "C7E7849466FE2358343588377258734B41C31549"
