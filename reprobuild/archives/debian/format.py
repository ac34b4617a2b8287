"""Debian's :class:`~reprobuild.archives.formats.PackageFormat`: the ``deb`` format.

Registered by being defined; the machinery (resolver, unpacker, dpkg's
database) is imported by each method, when a build or a lock needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import quote

from reprobuild.archives.formats import AcquiredSnapshot, IndexFile, PackageFormat
from reprobuild.errors import UsageError

if TYPE_CHECKING:
    from reprobuild.archives import ArchiveDef
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext
    from reprobuild.fetch import Fetcher
    from reprobuild.index_trust import SignedFile, TrustContext
    from reprobuild.licenses import PackageLicense
    from reprobuild.lockfile import LockedPackage, SnapshotLock
    from reprobuild.locking import Sources
    from reprobuild.plan import Step
    from reprobuild.stepparams import RootfsParams

__all__ = ["DebianFormat"]

# Debian architecture -> (GOARCH-style OCI architecture, variant). OCI uses Go's
# names (386, arm + variant, ppc64le), which differ from Debian's; a wrong one
# makes runtimes refuse or pick the image.
PLATFORMS: Final[Mapping[str, tuple[str, str | None]]] = {
    "amd64": ("amd64", None),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v5"),
    "i386": ("386", None),
    "ppc64el": ("ppc64le", None),
    "s390x": ("s390x", None),
    "mips64el": ("mips64le", None),
    "riscv64": ("riscv64", None),
    "loong64": ("loong64", None),
}


class DebianFormat(PackageFormat):
    """Debian: signed InRelease and Packages indexes, apt's choices, dpkg's database."""

    format = "deb"
    distribution = "debian"
    title = "Debian"
    package_media_type = "application/vnd.debian.binary-package"
    rebuilderd = "debian"
    purl_namespace: ClassVar[str] = "debian"

    def acquire(
        self, name: str, step: Step, archive: ArchiveDef, fetcher: Fetcher, sources: Sources
    ) -> AcquiredSnapshot:
        from reprobuild.archives.debian.lock import DebianSnapshots

        return DebianSnapshots(fetcher, sources).acquire(name, step, archive)

    def lock_rootfs(
        self,
        step: Step,
        snapshots: Sequence[AcquiredSnapshot],
        *,
        fetcher: Fetcher,
        sources: Sources,
        warn: Callable[[str], None] | None,
    ) -> tuple[list[LockedPackage], str]:
        from reprobuild.archives.debian.lock import SnapshotIndex, lock_rootfs

        snaps = [s for s in snapshots if isinstance(s, SnapshotIndex)]
        return lock_rootfs(step, snaps), step.param_data().get("variant") or "none"

    def verify_index(
        self, snap: SnapshotLock, packages: tuple[LockedPackage, ...], ctx: TrustContext
    ) -> list[SignedFile]:
        from reprobuild.archives.debian.trust import verify_debian

        return verify_debian(snap, packages, ctx)

    def index_uri(self, snap: SnapshotLock, suite: str) -> str:
        return f"{snap.url}dists/{suite}/InRelease"

    def rootfs_inputs(
        self, params: Mapping[str, Any], snap: SnapshotLock
    ) -> tuple[dict[str, Any], list[IndexFile]]:
        """``installer = "debootstrap"`` reads the signed InRelease and the Packages
        index the lockfile pinned besides the packages (``data["debootstrap"]``)."""
        if params.get("installer") != "debootstrap":
            return {}, []
        from reprobuild.archives.debian.debootstrap_resolve import debootstrap_mirror
        from reprobuild.errors import LockfileError

        if len(snap.suites) != 1 or len(snap.components) != 1 or len(snap.suites[0].indexes) != 1:
            raise LockfileError(
                f"installer \"debootstrap\": snapshot '{snap.name}' must have one suite and one "
                "component"
            )
        suite = snap.suites[0]
        [(index_path, index_sha)] = suite.indexes.items()
        files = {
            "inrelease": IndexFile(f"dists/{suite.suite}/InRelease", suite.inrelease_sha256),
            "packages": IndexFile(f"dists/{suite.suite}/{index_path}", index_sha),
        }
        spec = {
            **{name: {"path": f.path, "sha256": f.sha256} for name, f in files.items()},
            "suite": suite.suite,
            "component": snap.components[0],
            "arch": snap.architecture,
            "mirror": debootstrap_mirror(params.get("mirror"), snap.url, snap.timestamp),
        }
        return {"debootstrap": spec}, list(files.values())

    def system_sources(
        self,
        params: Mapping[str, Any],
        packages: Sequence[LockedPackage],
        snaps: Sequence[SnapshotLock],
    ) -> list[dict[str, Any]]:
        """What /etc/apt/sources.list names: the snapshots' canonical URLs (never a
        mirror), when apt is in the set and the recipe did not opt out."""
        if params.get("apt_sources") is False or not any(p.name == "apt" for p in packages):
            return []
        if params.get("installer") == "debootstrap":
            return []  # debootstrap writes its own, naming the mirror it was given
        return [
            {
                "url": s.url,
                "suites": [suite.suite for suite in s.suites],
                "components": list(s.components),
            }
            for s in snaps
        ]

    def platform(self, architecture: str) -> tuple[str, str | None]:
        if architecture in PLATFORMS:
            return PLATFORMS[architecture]
        return super().platform(architecture)

    def install(
        self, step: BuildStep, ctx: StepContext, tree: Path, params: RootfsParams
    ) -> None:
        if params.no_extract:
            raise UsageError("no_extract is pacman's NoExtract: it applies to Arch Linux roots")
        if params.installer == "debootstrap":
            from reprobuild.archives.debian.debootstrap_install import install_debootstrap

            if params.base is not None:
                raise UsageError(
                    'installer "debootstrap" makes a Debian root from nothing (no base)'
                )
            install_debootstrap(step, ctx, tree, params)
            return
        from reprobuild.archives.debian.install import install_debs

        install_debs(step, ctx, tree, params, has_base=params.base is not None)

    def configures(self, params: Mapping[str, Any]) -> bool:
        configure = params.get("configure")
        if configure is None:  # as install_debs decides, before the package set is known
            return (params.get("variant") or "essential") != "none" or "dpkg" in (
                params.get("packages") or ()
            )
        return bool(configure)

    def purl(self, package: LockedPackage, snap: SnapshotLock) -> str:
        distro = snap.suites[0].suite if snap.suites else snap.archive
        version = quote(package.version, safe="")
        return (
            f"pkg:deb/{self.purl_namespace}/{package.name}@{version}"
            f"?arch={package.architecture}&distro={distro}"
        )

    def licenses(self, path: Path, name: str) -> PackageLicense | None:
        from reprobuild.licenses import from_deb

        return from_deb(path, name)
