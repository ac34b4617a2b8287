"""Arch resolution against real pacman on a real core.db (2021, from paru's test data)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reprobuild.archives.arch.package import SyncPackage, parse_depend, read_sync_db
from reprobuild.archives.arch.resolve import ArchRequest, ArchUniverse, resolve_arch
from reprobuild.errors import ResolveError

SHARED = Path(__file__).resolve().parents[3] / "shared"
CORE_DB = SHARED / "fixtures" / "arch" / "paru_core.db"
REQUESTS = [
    ["base"],
    ["bash"],
    ["systemd"],
    ["pacman"],
    ["openssh"],
    ["curl"],
    ["sudo"],
    ["iproute2"],
    ["linux"],
    ["base", "linux", "linux-firmware"],
    ["gcc", "make"],
    ["python"],
    ["util-linux"],
    ["e2fsprogs"],
    ["gnupg"],
    ["sh"],  # a provided name
    ["base-devel"],  # a group
    ["linux-api-headers", "glibc"],
    ["coreutils", "findutils", "grep", "sed", "tar", "gzip"],
    ["shadow"],
    ["dbus"],
    ["mkinitcpio"],
    ["licenses", "filesystem"],
    ["cryptsetup", "lvm2"],
    ["archlinux-keyring"],
    ["ca-certificates"],
    ["libnftnl", "iptables"],
]


@pytest.fixture(scope="module")
def universe() -> ArchUniverse:
    if not CORE_DB.exists():
        pytest.skip(f"{CORE_DB} is absent (the shared fixtures are not beside the repository)")
    return ArchUniverse([("core", read_sync_db(CORE_DB.read_bytes()))])


def pacman_set(tmp: Path, targets: list[str]) -> set[str] | None:
    """pacman's choice, or None when pacman cannot satisfy the request either."""
    conf = tmp / "pacman.conf"
    (tmp / "db" / "sync").mkdir(parents=True, exist_ok=True)
    (tmp / "root").mkdir(exist_ok=True)
    shutil.copy(CORE_DB, tmp / "db" / "sync" / "core.db")
    conf.write_text(
        "[options]\n"
        f"RootDir = {tmp}/root\nDBPath = {tmp}/db/\nCacheDir = {tmp}/cache/\n"
        f"LogFile = {tmp}/log\nGPGDir = {tmp}/gnupg/\nHookDir = {tmp}/hooks/\n"
        "Architecture = x86_64\nSigLevel = Never\n\n[core]\nServer = file:///nonexistent\n"
    )
    proc = subprocess.run(
        [
            "pacman",
            "--config",
            str(conf),
            "-Sp",
            "--noconfirm",
            "--print-format",
            "%n %v",
            *targets,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        said = proc.stdout + proc.stderr
        assert "could not satisfy" in said or "target not found" in said, said
        return None
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


@pytest.mark.parametrize("targets", REQUESTS, ids=lambda t: "+".join(t))
def test_same_set_as_pacman(universe: ArchUniverse, targets: list[str], tmp_path: Path) -> None:
    if shutil.which("pacman") is None:
        pytest.skip("pacman is not installed (Debian package pacman-package-manager)")
    expected = pacman_set(tmp_path, targets)
    if expected is None:
        with pytest.raises(ResolveError):
            resolve_arch(universe, ArchRequest(tuple(targets)))
        return
    ours = {
        f"{c.package.name} {c.package.version}"
        for c in resolve_arch(universe, ArchRequest(tuple(targets))).packages
    }
    assert ours == expected


def pkg(
    name: str, *, depends: str = "", provides: str = "", conflicts: str = "", version: str = "1-1"
) -> SyncPackage:
    def deps(s: str) -> tuple:  # type: ignore[type-arg]
        return tuple(parse_depend(x) for x in s.split())

    return SyncPackage(
        name=name,
        version=version,
        filename=f"{name}-{version}-x86_64.pkg.tar.zst",
        arch="x86_64",
        base=name,
        depends=deps(depends),
        provides=deps(provides),
        conflicts=deps(conflicts),
    )


def test_conflict_names_both() -> None:
    u = ArchUniverse([("core", [pkg("a", depends="x"), pkg("x", conflicts="b"), pkg("b")])])
    with pytest.raises(ResolveError) as info:
        resolve_arch(u, ArchRequest(("a", "b")))
    assert "x and b are in conflict" in info.value.message


def test_versioned_provides() -> None:
    u = ArchUniverse(
        [
            (
                "core",
                [
                    pkg("app", depends="libfoo>=2"),
                    pkg("old", provides="libfoo=1"),
                    pkg("new", provides="libfoo=2.1"),
                    pkg("bare", provides="libfoo"),
                ],
            )
        ]
    )
    names = [c.package.name for c in resolve_arch(u, ArchRequest(("app",))).packages]
    assert names == ["app", "new"]


def test_repo_order_and_unknown() -> None:
    u = ArchUniverse(
        [("core", [pkg("a", version="1-1")]), ("extra", [pkg("a", version="2-1"), pkg("z")])]
    )
    [choice] = resolve_arch(u, ArchRequest(("a",))).packages
    assert (choice.repo, choice.package.version) == ("core", "1-1")
    [choice] = resolve_arch(u, ArchRequest(("extra/a",))).packages
    assert choice.repo == "extra"
    with pytest.raises(ResolveError, match=r"target not found|provides it"):
        resolve_arch(u, ArchRequest(("nope",)))
