"""The one interface every distribution implements, and the registry that finds them.

A distribution is a subpackage of :mod:`reprobuild.archives` (``debian/``,
``arch/``, ``ubuntu/``) whose ``format`` module defines a subclass of
:class:`PackageFormat`; defining the class registers it (mkosi registers its
distributions the same way). Nothing outside those packages knows a format
or a distribution by name: locking, the build graph, the rootfs step, the
trust checks, the SBOM, attestation, ``status`` and ``doctor`` ask the class
of the snapshot at hand. Adding a distribution is one new package plus a
``snapshots/NAME.toml`` (``docs/adding-a-distribution.md``).

Two names: ``format`` is the package format an archive definition declares
and a lockfile records (``deb``, ``alpm``); ``distribution`` picks the class
among those of one format (``debian``, ``ubuntu``, ``archlinux``), from the
definition's ``distribution`` key, else the format's own class.

The format modules import their machinery (resolvers, unpackers) inside the
methods, so that reading a lockfile or printing ``--help`` loads none of it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from reprobuild.errors import ArchiveError

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

__all__ = [
    "AcquiredSnapshot",
    "IndexFile",
    "PackageFormat",
    "distribution",
    "for_archive",
    "format_names",
    "package_format",
]


class AcquiredSnapshot(Protocol):
    """A snapshot fetched and verified by :meth:`PackageFormat.acquire`: its lock
    entry, and whatever else the format's resolver needs from it."""

    @property
    def lock(self) -> SnapshotLock: ...


@dataclass(frozen=True)
class IndexFile:
    """A file of a snapshot a step reads, fetched by the sha256 the lockfile pinned."""

    path: str  # under the snapshot's URL
    sha256: str


class PackageFormat:
    """What reprobuild needs to know about one distribution and its package format.

    Subclasses set the class attributes and implement the methods; a subclass
    of a subclass (Ubuntu of Debian) overrides only what differs.
    """

    format: ClassVar[str]  # "deb", "alpm": archive definitions and lockfiles name it
    distribution: ClassVar[str]  # "debian", "archlinux": what a definition may name
    title: ClassVar[str]  # for messages: "Debian", "Arch Linux"
    package_media_type: ClassVar[str]  # of a fetched package in the store
    # Locked packages pin the signature they are verified against at every use
    # (the lockfile's ``fingerprint`` and ``pgpsig`` fields).
    signed_packages: ClassVar[bool] = False
    default_architecture: ClassVar[str] = "amd64"
    rebuilderd: ClassVar[str] = ""  # the distribution's name to a rebuilderd instance

    _formats: ClassVar[dict[str, type[PackageFormat]]] = {}
    _distributions: ClassVar[dict[str, type[PackageFormat]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "distribution" in cls.__dict__:
            PackageFormat._distributions[cls.distribution] = cls
        if "format" in cls.__dict__:
            PackageFormat._formats[cls.format] = cls

    # -- locking -----------------------------------------------------------
    def acquire(
        self, name: str, step: Step, archive: ArchiveDef, fetcher: Fetcher, sources: Sources
    ) -> AcquiredSnapshot:
        """Find the snapshot a snapshot step names, fetch and verify its indexes."""
        raise NotImplementedError

    def lock_rootfs(
        self,
        step: Step,
        snapshots: Sequence[AcquiredSnapshot],
        *,
        fetcher: Fetcher,
        sources: Sources,
        warn: Callable[[str], None] | None,
    ) -> tuple[list[LockedPackage], str]:
        """The locked package set of a rootfs step over its snapshots, and the
        variant the lockfile records."""
        raise NotImplementedError

    def verify_index(
        self, snap: SnapshotLock, packages: tuple[LockedPackage, ...], ctx: TrustContext
    ) -> list[SignedFile]:
        """Check a lockfile's snapshot and its *packages* against what the archive
        signed, at every use; returns the signed files read (kept in the store)."""
        raise NotImplementedError

    def index_uri(self, snap: SnapshotLock, suite: str) -> str:
        """The URL of a suite's (or repository's) signed index, for attestations."""
        raise NotImplementedError

    # -- building ----------------------------------------------------------
    def locked_fields(self, package: LockedPackage) -> dict[str, Any]:
        """Fields of a locked package beyond the common ones (lockfile, build steps):
        the signature it is verified against, where the format pins one."""
        if not self.signed_packages:
            return {}
        return {"fingerprint": package.fingerprint, "pgpsig": package.pgpsig}

    def rootfs_inputs(
        self, params: Mapping[str, Any], snap: SnapshotLock
    ) -> tuple[dict[str, Any], list[IndexFile]]:
        """What a rootfs step reads beyond its packages: fields added to its data
        (its key covers them) and files of its (first) snapshot fetched by
        sha256 as ``index`` steps. Debian's ``installer = "debootstrap"`` reads
        the InRelease and Packages index it pinned."""
        return {}, []

    def system_sources(
        self,
        params: Mapping[str, Any],
        packages: Sequence[LockedPackage],
        snaps: Sequence[SnapshotLock],
    ) -> list[dict[str, Any]]:
        """What the tree's package manager should be pointed at (its sources list)."""
        return []

    def platform(self, architecture: str) -> tuple[str, str | None]:
        """The OCI ``(architecture, variant)`` of a tree of packages for *architecture*."""
        raise ArchiveError(f"no OCI platform known for {self.title} architecture {architecture!r}")

    def check_package(
        self, package: Mapping[str, Any], path: Path, sources: Sources, archive: ArchiveDef
    ) -> None:
        """Check a fetched package's own signature, where the format pins one (before
        anything uses it, fetched or from the store)."""

    def install(
        self, step: BuildStep, ctx: StepContext, tree: Path, params: RootfsParams
    ) -> None:
        """Install the step's locked packages into *tree* (on a base tree or none)."""
        raise NotImplementedError

    def configures(self, params: Mapping[str, Any]) -> bool:
        """Whether a rootfs step runs package scripts (needing the sandbox), as
        :meth:`install` will decide before the package set is known."""
        return params.get("configure") is not False

    # -- reading, reporting --------------------------------------------------
    def index_tools(self) -> str:
        """The programs checking a snapshot's signature (``doctor``: ``a|b``, either)."""
        return "gpgv"

    def purl(self, package: LockedPackage, snap: SnapshotLock) -> str:
        """The package URL (purl) of a locked package, for SBOMs."""
        raise NotImplementedError

    def licenses(self, path: Path, name: str) -> PackageLicense | None:
        """What a package file says about its licenses (None: not known)."""
        return None


def _discover() -> None:
    """Import every ``reprobuild.archives.<package>.format`` (defining registers)."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.ispkg and info.name != "definitions":
            try:
                importlib.import_module(f"reprobuild.archives.{info.name}.format")
            except ModuleNotFoundError as exc:
                if exc.name != f"reprobuild.archives.{info.name}.format":
                    raise


_DISCOVERED = False


def _registry() -> tuple[Mapping[str, type[PackageFormat]], Mapping[str, type[PackageFormat]]]:
    global _DISCOVERED
    if not _DISCOVERED:
        _discover()
        _DISCOVERED = True
    return PackageFormat._formats, PackageFormat._distributions


_INSTANCES: dict[type[PackageFormat], PackageFormat] = {}


def _instance(cls: type[PackageFormat]) -> PackageFormat:
    if cls not in _INSTANCES:
        _INSTANCES[cls] = cls()
    return _INSTANCES[cls]


def format_names() -> tuple[str, ...]:
    """The package formats an archive definition may declare."""
    return tuple(sorted(_registry()[0]))


def package_format(name: str) -> PackageFormat:
    """The class of format *name* (``deb``, ``alpm``), or an error naming the known ones."""
    formats, _ = _registry()
    if name not in formats:
        raise ArchiveError(
            f"unknown package format {name!r}",
            hint=f"known formats: {', '.join(sorted(formats))}",
        )
    return _instance(formats[name])


def distribution(name: str, fmt: str) -> PackageFormat:
    """The class of distribution *name*, which must use format *fmt*."""
    _, distributions = _registry()
    cls = distributions.get(name)
    if cls is None:
        raise ArchiveError(
            f"unknown distribution {name!r}",
            hint=f"known distributions: {', '.join(sorted(distributions))}",
        )
    if cls.format != fmt:
        raise ArchiveError(f"distribution {name!r} uses format {cls.format!r}, not {fmt!r}")
    return _instance(cls)


def for_archive(archive: ArchiveDef) -> PackageFormat:
    """The class an archive definition's snapshots are handled by."""
    if archive.distribution:
        return distribution(archive.distribution, archive.format)
    return package_format(archive.format)
