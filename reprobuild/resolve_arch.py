"""Arch Linux dependency resolution, as ``pacman -S --noconfirm TARGETS`` on an
empty system chooses (libalpm's ``_alpm_resolvedeps``):

* a target is a package name (first repository that has it, in repository
  order), ``repo/name``, a group (all its members), or else a provided name;
* a dependency is met by a package already chosen, else by the package of
  that exact name in the first repository that has a satisfying version, else
  by the first provider in repository order then name order (pacman asks, and
  ``--noconfirm`` takes the first); a package whose name is already chosen is
  never taken again (another version of it cannot be), so the next provider
  is, or the request is refused;
* dependencies are resolved depth first, in the order the package lists them;
* two chosen packages that conflict are an error naming both.

``replaces`` matter only to a system upgrade, which a fresh root never does.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reprobuild.archives.arch import Depend, SyncPackage, parse_depend
from reprobuild.errors import ResolveError


@dataclass(frozen=True)
class ArchRequest:
    packages: tuple[str, ...]


@dataclass(frozen=True)
class ArchChoice:
    repo: str
    package: SyncPackage


@dataclass(frozen=True)
class ArchResolution:
    """The chosen packages (sorted by name) and why each is there."""

    packages: tuple[ArchChoice, ...]
    reasons: Mapping[str, str] = field(default_factory=dict)


class ArchUniverse:
    """The packages of several repositories, in pacman's search order."""

    def __init__(self, repos: Sequence[tuple[str, Sequence[SyncPackage]]]) -> None:
        self.repos = [(name, sorted(pkgs, key=lambda p: p.name)) for name, pkgs in repos]
        self.by_name: list[dict[str, SyncPackage]] = [
            {p.name: p for p in pkgs} for _, pkgs in self.repos
        ]
        self.providers: dict[str, list[tuple[int, SyncPackage]]] = {}
        self.groups: dict[str, list[tuple[int, SyncPackage]]] = {}
        for i, (_, pkgs) in enumerate(self.repos):
            for p in pkgs:
                for prov in p.provides:
                    self.providers.setdefault(prov.name, []).append((i, p))
                for g in p.groups:
                    self.groups.setdefault(g, []).append((i, p))

    def repo_name(self, index: int) -> str:
        return self.repos[index][0]

    def all_names(self) -> Iterable[str]:
        for names in self.by_name:
            yield from names


def _provides(pkg: SyncPackage, dep: Depend) -> bool:
    """Whether ``pkg`` satisfies ``dep`` by name or by one of its provides."""
    if pkg.name == dep.name and dep.satisfied_by(pkg.version):
        return True
    for prov in pkg.provides:
        if prov.name != dep.name:
            continue
        if dep.op is None:
            return True
        # An unversioned provide never meets a versioned dependency.
        if prov.op == "=" and prov.version is not None and dep.satisfied_by(prov.version):
            return True
    return False


class _Resolver:
    def __init__(self, universe: ArchUniverse) -> None:
        self.u = universe
        self.chosen: dict[str, tuple[int, SyncPackage]] = {}
        self.reasons: dict[str, str] = {}
        self.preferred: list[tuple[int, SyncPackage, str]] = []  # pacman's explicit targets

    def satisfied(self, dep: Depend) -> bool:
        return any(_provides(p, dep) for _, p in self.chosen.values())

    def find(self, dep: Depend, why: str, exclude: Collection[str] = ()) -> tuple[int, SyncPackage]:
        """libalpm's resolvedep: exact name first, then providers, in repository
        order, skipping any package whose name is already chosen (``exclude``)."""
        for i, names in enumerate(self.u.by_name):
            p = names.get(dep.name)
            if p is not None and p.name not in exclude and dep.satisfied_by(p.version):
                return i, p
        for i, p in self.u.providers.get(dep.name, []):
            if p.name != dep.name and p.name not in exclude and _provides(p, dep):
                return i, p
        taken = sorted(
            {p.name for _, p in self.u.providers.get(dep.name, []) if p.name in exclude}
            | ({dep.name} & set(exclude))
        )
        if taken:
            raise ResolveError(
                f"cannot satisfy '{dep}' ({why}): only another version of "
                f"{', '.join(taken)} would, and {', '.join(taken)} is already chosen",
                hint="pacman refuses this request too ('unable to satisfy dependency')",
            )
        raise ResolveError(
            f"cannot satisfy '{dep}' ({why}): no package in the snapshot provides it",
            hint=_suggest(dep.name, self.u),
        )

    def add(self, index: int, pkg: SyncPackage, why: str) -> None:
        if pkg.name in self.chosen:
            return
        self.chosen[pkg.name] = (index, pkg)
        self.reasons[pkg.name] = why
        for dep in pkg.depends:
            if self.satisfied(dep):
                continue
            target = next(((i, p) for i, p, _ in self.preferred if _provides(p, dep)), None)
            if target is not None:
                i, p = target
                self.add(i, p, "requested")
                continue
            i, p = self.find(dep, f"a dependency of {pkg.name}", exclude=self.chosen.keys())
            self.add(i, p, f"depends of {pkg.name} ({dep})")

    def targets(self, names: Sequence[str]) -> list[tuple[int, SyncPackage, str]]:
        out: list[tuple[int, SyncPackage, str]] = []
        for raw in names:
            repo, _, name = raw.rpartition("/")
            if repo:
                idx = next((i for i, (n, _) in enumerate(self.u.repos) if n == repo), None)
                if idx is None:
                    raise ResolveError(f"target '{raw}': no repository '{repo}' in the snapshot")
                pkg = self.u.by_name[idx].get(name)
                if pkg is None:
                    raise ResolveError(f"target not found: {raw}", hint=_suggest(name, self.u))
                out.append((idx, pkg, "requested"))
                continue
            dep = parse_depend(name)
            for i, by in enumerate(self.u.by_name):
                pkg = by.get(dep.name)
                if pkg is not None and dep.satisfied_by(pkg.version):
                    out.append((i, pkg, "requested"))
                    break
            else:
                members = self.u.groups.get(dep.name)
                if members:
                    seen: set[str] = set()
                    for i, p in sorted(members, key=lambda m: (m[1].name, m[0])):
                        if p.name not in seen:
                            seen.add(p.name)
                            out.append((i, p, f"member of group {dep.name}"))
                    continue
                i, p = self.find(dep, "requested")
                out.append((i, p, f"provides {dep.name} (requested)"))
        return out

    def check_conflicts(self) -> None:
        chosen = sorted(self.chosen.values(), key=lambda c: c[1].name)
        for _, a in chosen:
            for conflict in a.conflicts:
                for _, b in chosen:
                    if b.name != a.name and _provides(b, conflict):
                        raise ResolveError(
                            f"{a.name} conflicts with {b.name} ('{conflict}'); "
                            "both are needed by the request",
                            hint="request only one of them",
                        )


def _suggest(name: str, universe: ArchUniverse) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(universe.all_names())), n=3)
    return "did you mean " + ", ".join(close) + "?" if close else None


def resolve_arch(universe: ArchUniverse, request: ArchRequest) -> ArchResolution:
    r = _Resolver(universe)
    r.preferred = r.targets(request.packages)
    for i, pkg, why in r.preferred:
        r.add(i, pkg, why)
    r.check_conflicts()
    chosen = sorted(r.chosen.values(), key=lambda c: c[1].name)
    return ArchResolution(
        tuple(ArchChoice(universe.repo_name(i), p) for i, p in chosen), dict(r.reasons)
    )
