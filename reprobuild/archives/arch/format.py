"""Arch Linux's :class:`~reprobuild.archives.formats.PackageFormat`: the ``alpm`` format.

Registered by being defined; the machinery (sync databases, pacman's
resolver, the unpacker and local database) is imported by each method.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from reprobuild.archives.formats import AcquiredSnapshot, PackageFormat

if TYPE_CHECKING:
    from reprobuild.archives import ArchiveDef
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext
    from reprobuild.fetch import Fetcher
    from reprobuild.index_trust import SignedFile, TrustContext
    from reprobuild.lockfile import LockedPackage, SnapshotLock
    from reprobuild.locking import Sources
    from reprobuild.plan import Step
    from reprobuild.stepparams import RootfsParams

__all__ = ["ArchFormat"]

# Arch Linux architecture -> (OCI architecture, variant).
PLATFORMS: Final[Mapping[str, tuple[str, str | None]]] = {
    "x86_64": ("amd64", None),
    "aarch64": ("arm64", "v8"),
    "armv7h": ("arm", "v7"),
    "i686": ("386", None),
    "riscv64": ("riscv64", None),
}


class ArchFormat(PackageFormat):
    """Arch Linux: a day of the Arch Linux Archive, pacman's choices, signed packages."""

    format = "alpm"
    distribution = "archlinux"
    title = "Arch Linux"
    package_media_type = "application/x-alpm-package"
    signed_packages = True
    default_architecture = "x86_64"
    rebuilderd = "archlinux"

    def acquire(
        self, name: str, step: Step, archive: ArchiveDef, fetcher: Fetcher, sources: Sources
    ) -> AcquiredSnapshot:
        from reprobuild.archives.arch.lock import ArchSnapshots
        from reprobuild.locking import cache_dir

        return ArchSnapshots(fetcher, sources, cache_dir()).acquire(
            name, step.param_data(), step.key
        )

    def lock_rootfs(
        self,
        step: Step,
        snapshots: Sequence[AcquiredSnapshot],
        *,
        fetcher: Fetcher,
        sources: Sources,
        warn: Callable[[str], None] | None,
    ) -> tuple[list[LockedPackage], str]:
        from reprobuild.archives.arch.lock import ArchSnapshot, lock_rootfs

        params = step.param_data()
        snaps = [s for s in snapshots if isinstance(s, ArchSnapshot)]
        members = lock_rootfs(params, snaps, fetcher=fetcher, sources=sources, warn=warn)
        return members, params.get("variant") or "none"

    def verify_index(
        self, snap: SnapshotLock, packages: tuple[LockedPackage, ...], ctx: TrustContext
    ) -> list[SignedFile]:
        """Arch databases are not signed upstream; each package is: every signature
        the lockfile pins must name its pinned key, one of the archive's keyring."""
        from reprobuild.archives.arch.trust import check_locked_signers
        from reprobuild.index_trust import snapshot_archive

        archive = snapshot_archive(snap)
        check_locked_signers(
            packages,
            lambda: ctx.sources.keyring(archive),
            insecure=ctx.sources.insecure,
            allow_revoked=ctx.sources.allow_expired,
        )
        return []

    def index_uri(self, snap: SnapshotLock, suite: str) -> str:
        return f"{snap.url}{suite}/{suite}.db"

    def platform(self, architecture: str) -> tuple[str, str | None]:
        if architecture in PLATFORMS:
            return PLATFORMS[architecture]
        return super().platform(architecture)

    def check_package(
        self, package: Mapping[str, Any], path: Path, sources: Sources, archive: ArchiveDef
    ) -> None:
        from reprobuild.archives.arch.trust import check_locked_package

        check_locked_package(
            package,
            path,
            keyring=lambda: sources.keyring(archive),
            insecure=sources.insecure,
            allow_revoked=sources.allow_expired,
        )

    def install(
        self, step: BuildStep, ctx: StepContext, tree: Path, params: RootfsParams
    ) -> None:
        from reprobuild.archives.arch.install import install_packages

        install_packages(step, ctx, tree, params)

    def configures(self, params: Mapping[str, Any]) -> bool:
        return params.get("configure") is not False  # scriptlets, where bash is in the tree

    def index_tools(self) -> str:
        return "sqv|gpgv"  # Arch's detached .sig: either verifier

    def purl(self, package: LockedPackage, snap: SnapshotLock) -> str:
        version = quote(package.version, safe="")
        return f"pkg:alpm/arch/{package.name}@{version}?arch={package.architecture}"

