"""Every package of a snapshot, indexed once for apt's choices (:mod:`.resolve`):
candidates, providers, and apt's package IDs that break ties (split from
:mod:`.resolve`)."""

from __future__ import annotations

import difflib
import functools
import gc
import re
from collections.abc import Iterable, Mapping
from dataclasses import fields
from functools import cached_property
from itertools import chain
from operator import attrgetter

from reprobuild.archives.debian.index import BinaryPackage
from reprobuild.archives.debian.versions import compare_debian_versions

__all__ = ["DebianUniverse"]

# apt flags itself Essential (pkgCacheGen::ForceEssential), which counts when
# it ranks providers.
_FORCE_ESSENTIAL = frozenset({"apt"})
_NAME_RE = re.compile(r"[,|] *([A-Za-z0-9][A-Za-z0-9+.\-]*(?::any)?)")
# The order in which apt's cache generator meets names in a stanza: it creates
# a package on its first mention, and the package's ID breaks ties between
# equally ranked providers. Suggests and Enhances count only when the index
# parser keeps them (read with getattr so that they are used once it does).
_ID_FIELDS = (
    "pre_depends",
    "depends",
    "conflicts",
    "breaks",
    "recommends",
    "suggests",
    "replaces",
    "enhances",
    "provides",
)
_ID_GETTER = attrgetter(
    "name", *(f for f in _ID_FIELDS if f in {f.name for f in fields(BinaryPackage)})
)
_Provider = tuple[BinaryPackage, "str | None"]


class DebianUniverse:
    """Every package of a snapshot, indexed once for the solver.

    Built from one or several Packages indexes; when a name has several
    versions the highest is the candidate, as apt's default pins make it.
    """

    def __init__(self, packages: Iterable[BinaryPackage], architecture: str = "amd64") -> None:
        # Tens of thousands of new containers and no garbage: the cyclic
        # collector's passes over them cost more than the indexing itself.
        paused = gc.isenabled()
        gc.disable()
        try:
            self._index(packages, architecture)
        finally:
            if paused:
                gc.enable()

    def _index(self, packages: Iterable[BinaryPackage], architecture: str) -> None:
        self.architecture = architecture
        versions: dict[str, list[BinaryPackage]] = {}
        foreign: dict[str, set[str]] = {}
        seen: set[tuple[str, str]] = set()
        order: list[BinaryPackage] = []
        for pkg in packages:
            if pkg.architecture not in (architecture, "all"):
                foreign.setdefault(pkg.name, set()).add(pkg.architecture)
                continue
            if (pkg.name, pkg.version) in seen:
                continue  # the same version from another suite: apt merges them
            seen.add((pkg.name, pkg.version))
            versions.setdefault(pkg.name, []).append(pkg)
            order.append(pkg)
        cmp = functools.cmp_to_key(compare_debian_versions)
        for vs in versions.values():
            if len(vs) > 1:
                vs.sort(key=lambda p: cmp(p.version), reverse=True)
        self._versions = versions
        self._order = order
        self.foreign = {name: tuple(sorted(archs)) for name, archs in foreign.items()}
        self.candidates: Mapping[str, BinaryPackage] = {n: vs[0] for n, vs in versions.items()}
        provides: dict[str, list[_Provider]] = {}
        for pkg in order:
            if pkg.provides:
                for group in pkg.relations("provides"):
                    for rel in group:
                        provides.setdefault(rel.name, []).append((pkg, rel.version))
        self.provided = provides
        # Flags live on apt's package, not on a version: set if any version sets them.
        self.essential = frozenset(p.name for p in order if p.essential) | _FORCE_ESSENTIAL
        self.important = frozenset(p.name for p in order if p.protected)

    @classmethod
    def from_packages(
        cls, packages: Iterable[BinaryPackage], architecture: str = "amd64"
    ) -> DebianUniverse:
        """Build a universe; packages of other architectures are only remembered by name."""
        return cls(packages, architecture)

    def __len__(self) -> int:
        return len(self._order)

    def versions(self, name: str) -> tuple[BinaryPackage, ...]:
        """All versions of ``name`` for this architecture, highest first."""
        return tuple(self._versions.get(name, ()))

    def providers(self, name: str) -> tuple[tuple[BinaryPackage, str | None], ...]:
        """Every (package version, provided version) that Provides ``name``."""
        return tuple(self.provided.get(name, ()))

    @cached_property
    def _ids(self) -> dict[str, int]:
        """apt's package IDs (creation order in its cache), its last tie-break between providers.

        Computed only when a tie has to be broken.
        """
        # Names come out in apt's order from one regex pass over the relation
        # texts; a text seen before names nothing new, so duplicates (most of
        # them: "libc6 (>= 2.34)") are dropped first, at C speed.
        texts = dict.fromkeys(chain.from_iterable(map(_ID_GETTER, self._order)))
        names = dict.fromkeys(_NAME_RE.findall("," + ",".join(texts)))
        return {name: i for i, name in enumerate(names)}

    def package_id(self, name: str) -> int:
        """The position at which apt's cache generator would create package ``name``."""
        return self._ids.get(name, len(self._ids))

    def suggest(self, name: str) -> list[str]:
        names = list(self._versions) + list(self.provided)
        return difflib.get_close_matches(name, names, n=3, cutoff=0.75)
