"""Arch Linux dependency resolution, as ``pacman -S --noconfirm TARGETS`` chooses
on an empty root (pacman 6.0: ``process_target`` in ``src/pacman/sync.c``;
``resolvedep``/``_alpm_resolvedeps`` in ``deps.c``; ``_alpm_sync_prepare``):

* targets, in order: ``repo/target`` looks in that repository only; a target
  is a dependency string (``foo``, ``foo>=2``), met by the package of that
  name in the first repository whose version satisfies it, else by the first
  provider (repository order, then name order: ``--noconfirm`` takes the
  first of pacman's choices); else it is a group (members of every
  repository, in repository then name order, a name once). The same package
  twice is one target; two packages of one name are an error;
* each target's dependencies are resolved depth first, in the order the
  package lists them: a dependency met by a package already chosen, or by a
  target, is met; else the first satisfier as above, never a package of a
  name already chosen;
* then every chosen pair that conflicts (in the order chosen): when one of
  the two provides the other's name, the provided one is dropped with
  pacman's warning ("removing 'iptables' from target list because it
  conflicts with 'iptables-nft'"; packages pulled in only by it stay, as in
  pacman); otherwise the request is refused naming both.

``replaces`` matter only to a system upgrade, which a fresh root never does.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from reprobuild.archives.arch.sync_db import Depend, SyncDb, SyncPackage, parse_depend
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
    """The chosen packages (sorted by name), why each is there, and pacman's warnings."""

    packages: tuple[ArchChoice, ...]
    reasons: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class _Repo:
    """One repository: packages by name (made on first use), providers and groups."""

    def __init__(self, name: str, source: Sequence[SyncPackage] | SyncDb) -> None:
        self.name = name
        self._made: dict[str, SyncPackage] = {}
        if isinstance(source, SyncDb):
            self._db: SyncDb | None = source
            self.providers: Mapping[str, tuple[str, ...]] = source.providers
            self.groups: Mapping[str, tuple[str, ...]] = source.groups
            return
        self._db = None
        providers: dict[str, list[str]] = {}
        groups: dict[str, list[str]] = {}
        for pkg in sorted(source, key=lambda p: p.name):
            if pkg.name in self._made:
                continue
            self._made[pkg.name] = pkg
            for prov in pkg.provides:
                names = providers.setdefault(prov.name, [])
                if not names or names[-1] != pkg.name:
                    names.append(pkg.name)
            for group in pkg.groups:
                members = groups.setdefault(group, [])
                if not members or members[-1] != pkg.name:
                    members.append(pkg.name)
        self.providers = {k: tuple(v) for k, v in providers.items()}
        self.groups = {k: tuple(v) for k, v in groups.items()}

    def get(self, name: str) -> SyncPackage | None:
        pkg = self._made.get(name)
        if pkg is None and self._db is not None:
            pkg = self._db.package(name)
            if pkg is not None:
                self._made[name] = pkg
        return pkg

    def names(self) -> Iterable[str]:
        return self._db.packed if self._db is not None else self._made


class ArchUniverse:
    """The packages of several repositories, in pacman's search order."""

    def __init__(self, repos: Sequence[tuple[str, Sequence[SyncPackage] | SyncDb]]) -> None:
        self.repos = [_Repo(name, source) for name, source in repos]

    def repo_name(self, index: int) -> str:
        return self.repos[index].name

    def all_names(self) -> Iterable[str]:
        for repo in self.repos:
            yield from repo.names()


_Pkg = tuple[int, SyncPackage]  # (repository index, package): pacman's package object


def _literal(pkg: SyncPackage, dep: Depend) -> bool:
    return pkg.name == dep.name and dep.satisfied_by(pkg.version)


def _by_provides(pkg: SyncPackage, dep: Depend) -> bool:
    """``_alpm_depcmp_provides``: an unversioned provide meets only unversioned needs."""
    for prov in pkg.provides:
        if prov.name != dep.name:
            continue
        if dep.op is None:
            return True
        if prov.op == "=" and prov.version is not None and dep.satisfied_by(prov.version):
            return True
    return False


def _depcmp(pkg: SyncPackage, dep: Depend) -> bool:
    return _literal(pkg, dep) or _by_provides(pkg, dep)


class _Unsatisfied(Exception):
    """A dependency no package meets (libalpm: 'unable to satisfy dependency')."""

    def __init__(self, dep: Depend, needed_by: str) -> None:
        super().__init__(str(dep))
        self.dep = dep
        self.needed_by = needed_by


class _Resolver:
    def __init__(self, universe: ArchUniverse) -> None:
        self.u = universe
        self.every = tuple(range(len(universe.repos)))
        self.reasons: dict[str, str] = {}
        self.provided: dict[str, list[SyncPackage]] = {}  # chosen packages by what they provide

    # -- resolvedep --------------------------------------------------------
    def resolvedep(
        self, dep: Depend, dbs: Sequence[int], excluding: Mapping[str, object] | None
    ) -> _Pkg | None:
        """The package pacman picks for ``dep``: literal first, then the first provider."""
        for i in dbs:
            pkg = self.u.repos[i].get(dep.name)
            if pkg is not None and _literal(pkg, dep) and not (excluding and pkg.name in excluding):
                return i, pkg
        for i in dbs:
            repo = self.u.repos[i]
            for name in repo.providers.get(dep.name, ()):
                if name == dep.name or (excluding and name in excluding):
                    continue
                pkg = repo.get(name)
                if pkg is not None and _by_provides(pkg, dep):
                    return i, pkg
        return None

    # -- targets -----------------------------------------------------------
    def targets(self, names: Sequence[str]) -> list[tuple[_Pkg, str]]:
        out: list[tuple[_Pkg, str]] = []
        seen: dict[str, int] = {}  # target name -> repository index

        def add(found: _Pkg, why: str, target: str) -> None:
            i, pkg = found
            if pkg.name in seen:
                if seen[pkg.name] == i:
                    return  # the same package twice: pacman skips it
                raise ResolveError(
                    f"'{pkg.name}': duplicate target ({target} names a second package "
                    f"{pkg.name}, from {self.u.repo_name(i)} besides "
                    f"{self.u.repo_name(seen[pkg.name])})",
                    hint="name one repository (repo/name)",
                )
            seen[pkg.name] = i
            out.append((found, why))

        for raw in names:
            slash = raw.find("/")
            if slash > 0:
                wanted, target = raw[:slash], raw[slash + 1 :]
                idx = next((i for i, r in enumerate(self.u.repos) if r.name == wanted), None)
                if idx is None:
                    raise ResolveError(
                        f"database not found: {wanted} (in target '{raw}')",
                        hint="the snapshot has repositories "
                        + ", ".join(r.name for r in self.u.repos),
                    )
                dbs: Sequence[int] = (idx,)
            else:
                target, dbs = raw, self.every
            dep = parse_depend(target)
            found = self.resolvedep(dep, dbs, None)
            if found is not None:
                why = (
                    "requested" if found[1].name == dep.name else f"provides {dep.name} (requested)"
                )
                add(found, why, raw)
                continue
            members: list[_Pkg] = []
            taken: set[str] = set()
            for i in dbs:
                repo = self.u.repos[i]
                for name in repo.groups.get(target, ()):
                    pkg = repo.get(name)
                    if pkg is not None and name not in taken:
                        taken.add(name)
                        members.append((i, pkg))
            if not members:
                raise ResolveError(f"target not found: {raw}", hint=_suggest(target, self.u))
            for member in members:
                add(member, f"member of group {target}", raw)
        return out

    # -- _alpm_resolvedeps -------------------------------------------------
    def resolvedeps(
        self, found: _Pkg, preferred: Sequence[_Pkg], packages: dict[str, _Pkg], why: str
    ) -> None:
        """Add a package and, depth first, what it needs; :class:`_Unsatisfied` at
        the first dependency nothing meets.

        libalpm goes on after a failure, undoes the failed package's additions
        and lets its parent fail in turn (there is no fallback to another
        provider, and an empty root offers none), so one failure always ends
        in "could not satisfy dependencies". Stopping at the first is the same
        answer, without libalpm's retries of the same failing subtree, which
        grow exponentially (``pacman -Sp kde-applications-meta`` on the 2022
        databases, without community, runs for more than ten minutes).
        """
        _, pkg = found
        if pkg.name in packages:
            return
        packages[pkg.name] = found
        self._index(pkg)
        self.reasons.setdefault(pkg.name, why)
        for dep in pkg.depends:
            if _depcmp(pkg, dep):  # alpm_checkdeps: the package meets its own need
                continue
            if self._chosen_meets(dep, packages):
                continue
            spkg = next((c for c in preferred if _depcmp(c[1], dep)), None)
            if spkg is None:
                spkg = self.resolvedep(dep, self.every, packages)
            if spkg is None:
                raise _Unsatisfied(dep, pkg.name)
            self.resolvedeps(spkg, preferred, packages, f"depends of {pkg.name} ({dep})")

    def _index(self, pkg: SyncPackage) -> None:
        for prov in pkg.provides:
            self.provided.setdefault(prov.name, []).append(pkg)

    def _chosen_meets(self, dep: Depend, packages: Mapping[str, _Pkg]) -> bool:
        """``find_dep_satisfier`` over the chosen packages, through an index."""
        named = packages.get(dep.name)
        if named is not None and _literal(named[1], dep):
            return True
        return any(_by_provides(p, dep) for p in self.provided.get(dep.name, ()))

    # -- _alpm_sync_prepare: conflicts among the chosen ----------------------
    def conflicts(self, chosen: list[_Pkg]) -> tuple[set[str], list[str]]:
        position = {p.name: n for n, (_, p) in enumerate(chosen)}
        by_provide: dict[str, list[SyncPackage]] = {}
        for _, p in chosen:
            for prov in p.provides:
                by_provide.setdefault(prov.name, []).append(p)
        found: list[tuple[SyncPackage, SyncPackage, Depend]] = []
        pairs: set[tuple[str, str]] = set()
        for _, p1 in chosen:
            for conflict in p1.conflicts:
                candidates = {p.name: p for p in by_provide.get(conflict.name, ())}
                if conflict.name in position:
                    candidates[conflict.name] = chosen[position[conflict.name]][1]
                others = sorted(candidates.values(), key=lambda p: position[p.name])
                for p2 in others:
                    pair = (p1.name, p2.name)
                    if p2.name != p1.name and pair not in pairs and _depcmp(p2, conflict):
                        pairs.add(pair)
                        found.append((p1, p2, conflict))
        removed: set[str] = set()
        warnings: list[str] = []
        for p1, p2, conflict in found:
            if p1.name in removed or p2.name in removed:
                continue
            if _depcmp(p1, Depend(p2.name)):
                drop, keep = p2, p1
            elif _depcmp(p2, Depend(p1.name)):
                drop, keep = p1, p2
            else:
                reason = f" ({conflict})" if conflict.op is not None else ""
                raise ResolveError(
                    f"unresolvable package conflicts detected: {p1.name} and {p2.name} "
                    f"are in conflict{reason}",
                    hint="request only one of them",
                )
            removed.add(drop.name)
            warnings.append(
                f"removing '{drop.name}' from target list because it conflicts with '{keep.name}'"
            )
        return removed, warnings


def _suggest(name: str, universe: ArchUniverse) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(universe.all_names())), n=3)
    return "did you mean " + ", ".join(close) + "?" if close else None


def resolve_arch(universe: ArchUniverse, request: ArchRequest) -> ArchResolution:
    r = _Resolver(universe)
    targets = r.targets(request.packages)
    preferred = [t for t, _ in targets]
    packages: dict[str, _Pkg] = {}
    try:
        for found, why in targets:
            r.resolvedeps(found, preferred, packages, why)
    except _Unsatisfied as miss:
        raise ResolveError(
            f"cannot satisfy '{miss.dep}' (a dependency of {miss.needed_by}): "
            "no package in the snapshot provides it",
            hint=_suggest(miss.dep.name, universe),
        ) from None
    chosen = list(packages.values())
    removed, warnings = r.conflicts(chosen)
    kept = sorted((c for c in chosen if c[1].name not in removed), key=lambda c: c[1].name)
    return ArchResolution(
        tuple(ArchChoice(universe.repo_name(i), p) for i, p in kept),
        {p.name: r.reasons[p.name] for _, p in kept},
        tuple(warnings),
    )
