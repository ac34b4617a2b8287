"""Debian dependency resolution that reproduces ``apt-get install --no-install-recommends``.

A lockfile is only trustworthy if a user can check it against the tool they
already trust, so this module does not solve dependencies "well": it replays
the choices of apt 2.6's internal solver (``pkgDepCache::MarkInstall``) on an
empty system, including its quirks:

* requested packages are first all marked without their dependencies (so one
  request can satisfy another's alternative), then each one, in the order
  given, pulls in its dependencies depth first;
* a dependency group already satisfied by a marked package is skipped;
  otherwise the candidates of the alternatives are tried in order, the
  providers of each alternative sorted as apt's ``CompareProviders`` does
  (the package of that name first, then Essential, then Protected, then
  higher Priority, then the later package in apt's cache);
* a package whose own dependencies cannot be met is not installed and its
  candidate is dropped, and the next alternative is tried;
* Conflicts and Breaks of a package being installed unmark conflicting
  packages that are not protected; user requests (and, as in apt, the sole
  solutions of their dependencies) are protected, and a conflict between them
  is an error that names both packages and the relation.

The universe is single-architecture, like apt with one configured
architecture: packages of that architecture and ``all``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from reprobuild.archives.debian.index import BinaryPackage, Relation, RelationField
from reprobuild.archives.debian.universe import DebianUniverse
from reprobuild.archives.debian.versions import compare_debian_versions
from reprobuild.errors import ResolveError

__all__ = [
    "VARIANTS",
    "ConflictError",
    "DebianUniverse",
    "Request",
    "Resolution",
    "UnknownPackageError",
    "UnsatisfiableError",
    "resolve",
    "seed_packages",
]

VARIANTS = ("none", "essential", "required", "minbase", "important")
"""Seed sets, named as mmdebstrap names them (``minbase`` as debootstrap does)."""

# pkgCache::State::VerPriority; a missing Priority stays 0 in apt's cache
# (which sorts *before* required), an unknown word becomes extra.
_PRIORITY = {"required": 1, "important": 2, "standard": 3, "optional": 4, "extra": 5}
_MAX_DEPTH = 3000  # apt gives up at the same depth (IsModeChangeOk)
_POSITIVE: tuple[tuple[RelationField, str], ...] = (
    ("pre_depends", "Pre-Depends"),
    ("depends", "Depends"),
)
_NEGATIVE: tuple[tuple[RelationField, str], ...] = (
    ("conflicts", "Conflicts"),
    ("breaks", "Breaks"),
)


class UnknownPackageError(ResolveError):
    """A requested package (or version) does not exist in the universe."""

    request: str | None = None  # the request item at fault, as the recipe wrote it


class UnsatisfiableError(ResolveError):
    """A requested package's dependencies cannot be met."""


class ConflictError(UnsatisfiableError):
    """Two packages that must both be installed conflict (Conflicts or Breaks)."""


@dataclass(frozen=True)
class Request:
    """What to install: package names (``name``, ``name=version``, ``name:arch``) and a seed set."""

    packages: tuple[str, ...]
    variant: str = "none"
    architecture: str = "amd64"


@dataclass(frozen=True)
class Resolution:
    """The packages apt would install, sorted by name, and why each one is there."""

    packages: tuple[BinaryPackage, ...]
    reasons: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def names(self) -> tuple[str, ...]:
        """The package names, sorted."""
        return tuple(p.name for p in self.packages)


def seed_packages(universe: DebianUniverse, variant: str) -> tuple[tuple[str, str], ...]:
    """The (name, reason) seeds of a variant, in the order they are marked.

    As mmdebstrap defines them: ``essential`` is every Essential: yes package,
    ``required`` adds Priority: required (debootstrap's minbase), ``minbase``
    adds apt to that, ``important`` adds Priority: important and apt. Names
    are sorted so that the seed order, which apt's choices depend on, is
    stable.
    """
    if variant not in VARIANTS:
        raise ResolveError(f"unknown variant {variant!r}", hint=f"use one of {', '.join(VARIANTS)}")
    if variant == "none":
        return ()
    cands = universe.candidates
    seeds = [(n, "essential") for n in sorted(cands) if cands[n].essential]
    if variant in ("required", "minbase", "important"):
        seeds += [
            (n, "priority required")
            for n in sorted(cands)
            if cands[n].priority == "required" and not cands[n].essential
        ]
    if variant == "important":
        seeds += [
            (n, "priority important") for n in sorted(cands) if cands[n].priority == "important"
        ]
    if variant in ("minbase", "important") and "apt" in cands:
        seeds.append(("apt", f"variant {variant}"))
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, why in seeds:
        if name not in seen:
            seen.add(name)
            out.append((name, why))
    return tuple(out)


class _Solver:
    """The mutable state of one resolution: apt's pkgDepCache, reduced to what matters here."""

    def __init__(self, universe: DebianUniverse) -> None:
        self.u = universe
        self.base = universe.candidates
        self.provides = universe.provided
        # Candidates changed by pins or dropped by failures (None). `cver` keeps
        # the candidates apt's cached dependency states still see: it drops a
        # candidate without recomputing the states of its reverse dependencies.
        self.cand_over: dict[str, BinaryPackage | None] = {}
        self.cver_over: dict[str, BinaryPackage | None] = {}
        self.marked: dict[str, BinaryPackage] = {}
        self.protected: set[str] = set()
        self.reasons: dict[str, str] = {}
        self.failures: dict[str, str] = {}

    # ---------------------------------------------------------------- queries

    def cand(self, name: str) -> BinaryPackage | None:
        over = self.cand_over
        return over[name] if name in over else self.base.get(name)

    def cver(self, name: str) -> BinaryPackage | None:
        over = self.cver_over
        return over[name] if name in over else self.base.get(name)

    def _arch_ok(self, rel: Relation) -> bool:
        return rel.arch is None or rel.arch in (self.u.architecture, "native", "all")

    def matches(
        self, rel: Relation, state: dict[str, BinaryPackage] | None, parent: str | None = None
    ) -> BinaryPackage | None:
        """The package of ``state`` (marked set, or candidates if None) meeting one alternative.

        ``parent`` is set for Conflicts/Breaks: a package never conflicts
        with itself, nor through what it provides itself.
        """
        get = self.cver if state is None else state.get
        name = rel.name
        if rel.arch == "any":
            # foo:any is met by foo itself when it is Multi-Arch: allowed.
            p = get(name)
            if p is not None and p.multi_arch == "allowed" and rel.satisfied_by(p.version):
                return p
            return None
        if not self._arch_ok(rel):
            return None
        if name != parent:
            p = get(name)
            if p is not None and rel.satisfied_by(p.version):
                return p
        for owner, pver in self.provides.get(name, ()):
            if owner.name == parent or get(owner.name) is not owner:
                continue
            if rel.op is None or (pver is not None and rel.satisfied_by(pver)):
                return owner
        return None

    def solutions(
        self, group: tuple[Relation, ...], *, negative: bool = False
    ) -> list[BinaryPackage]:
        """apt's getAllPossibleSolutions(CANDIDATE, sorted): the group's solutions, best first."""
        out: list[BinaryPackage] = []
        for rel in group:
            found: list[BinaryPackage] = []
            if rel.arch == "any":
                p = self.cand(rel.name)
                if p is not None and p.multi_arch == "allowed" and rel.satisfied_by(p.version):
                    found.append(p)
            elif self._arch_ok(rel):
                p = self.cand(rel.name)
                if p is not None and rel.satisfied_by(p.version):
                    found.append(p)
                for owner, pver in self.provides.get(rel.name, ()):
                    if self.cand(owner.name) is not owner:
                        continue
                    if rel.op is None or (pver is not None and rel.satisfied_by(pver)):
                        found.append(owner)
            if len(found) > 1:
                found = self._rank(rel.name, found)
            out.extend(found)
        # std::unique: adjacent duplicates only
        out = [p for i, p in enumerate(out) if i == 0 or out[i - 1] is not p]
        if not negative:
            out = [p for p in out if not (p.name in self.protected and p.name not in self.marked)]
        return out

    def _rank(self, target: str, found: list[BinaryPackage]) -> list[BinaryPackage]:
        """Sort providers as apt's CompareProviders does (nothing installed, one architecture).

        apt's last tie-break is the package ID; it is looked up only for a
        real tie, since building the ID table costs a quarter second.
        """
        keys = [self._provider_key(target, p) for p in found]
        if len(set(keys)) < len(keys):
            keys = [(*k, -self.u.package_id(p.name)) for k, p in zip(keys, found, strict=True)]
        order = sorted(range(len(found)), key=keys.__getitem__)
        return [found[i] for i in order]

    def _provider_key(self, target: str, pkg: BinaryPackage) -> tuple[int, ...]:
        name = pkg.name
        prio = 0 if pkg.priority is None else _PRIORITY.get(pkg.priority, 5)
        return (
            name not in self.protected,
            name != target,
            name not in self.u.essential,
            name not in self.u.important,
            prio,
        )

    def groups(self, pkg: BinaryPackage) -> list[tuple[str, bool, tuple[Relation, ...]]]:
        """Critical relation groups in apt's order: Pre-Depends, Depends, Conflicts, Breaks."""
        out: list[tuple[str, bool, tuple[Relation, ...]]] = []
        for attr, label in _POSITIVE:
            if getattr(pkg, attr):
                out.extend((label, False, g) for g in pkg.relations(attr))
        for attr, label in _NEGATIVE:
            if getattr(pkg, attr):
                # Negative relations have no alternatives: each one stands alone.
                out.extend((label, True, (rel,)) for g in pkg.relations(attr) for rel in g)
        return out

    def satisfied(self, group: tuple[Relation, ...], negative: bool, parent: str) -> bool:
        if negative:
            return self.matches(group[0], self.marked, parent) is None
        return any(self.matches(rel, self.marked) is not None for rel in group)

    def inst_broken(self, name: str) -> bool:
        pkg = self.marked.get(name)
        if pkg is None:
            return False
        return any(not self.satisfied(g, neg, name) for _, neg, g in self.groups(pkg))

    # ---------------------------------------------------------------- actions

    def mark(self, pkg: BinaryPackage, reason: str) -> None:
        self.marked[pkg.name] = pkg
        self.reasons.setdefault(pkg.name, reason)

    def unmark(self, name: str) -> None:
        self.marked.pop(name, None)
        self.reasons.pop(name, None)

    def mark_keep(self, name: str) -> bool:
        """Unmark a package a new install conflicts with; protected ones stay (and that fails)."""
        if name not in self.marked:
            return True
        if name in self.protected:
            return False
        self.unmark(name)
        return True

    def discard_candidate(self, name: str) -> None:
        self.cand_over[name] = self.marked.get(name)

    def deps_satisfiable(self, pkg: BinaryPackage) -> str | None:
        """apt's IsInstallOkDependenciesSatisfiableByCandidates; the failing group if any."""
        for label, negative, group in self.groups(pkg):
            if negative:
                continue
            if any(
                self.matches(rel, self.marked) is not None or self.matches(rel, None) is not None
                for rel in group
            ):
                continue
            return f"{label}: {_group_text(group)}"
        return None

    def mark_install(self, name: str, auto: bool, depth: int, from_user: bool, reason: str) -> bool:
        """pkgDepCache::MarkInstall for a system with nothing installed."""
        if depth > _MAX_DEPTH:
            return False
        is_protected = name in self.protected
        if not from_user and is_protected and name not in self.marked:
            return False  # IsModeChangeOk: only the user may change a protected mode
        pkg = self.cand(name)
        if pkg is None:
            return False
        if not is_protected and name in self.marked and not self.inst_broken(name):
            return True
        if auto:
            bad = self.deps_satisfiable(pkg)
            if bad is not None:
                self.failures.setdefault(name, f"its {bad} cannot be satisfied")
                if not is_protected:
                    self.cand_over[name] = None
                    self.cver_over.setdefault(name, pkg)
                return False
        if from_user:
            self.mark(pkg, reason)
        fail_early = not is_protected and not from_user
        failed = False
        if not auto:
            if not from_user:
                self.mark(pkg, reason)
            return True

        # MarkInstall_CollectDependencies: checked against the marks made so far.
        to_install: list[tuple[str, tuple[Relation, ...]]] = []
        to_remove: list[tuple[str, Relation]] = []
        for label, negative, group in self.groups(pkg):
            if self.satisfied(group, negative, name) and not is_protected:
                continue
            if negative:
                to_remove.append((label, group[0]))
            else:
                to_install.append((label, group))

        # MarkInstall_RemoveConflictsIfNotUpgradeable
        for label, rel in to_remove:
            broke = False
            for other in self.solutions((rel,), negative=True):
                if other.name == name or self.cand(other.name) is not other:
                    continue
                if other.name in self.marked and not self.mark_keep(other.name):
                    self.failures.setdefault(name, f"it {label} {rel}, which {other.name} is")
                    broke = True
                    if not is_protected and not from_user:
                        break
                elif is_protected:
                    self.cand_over[other.name] = None
                    self.protected.add(other.name)
            if broke:
                if fail_early:
                    return False
                failed = True

        if not from_user:
            self.mark(pkg, reason)

        # ScopedProtected: a package is protected while its dependencies are marked.
        self.protected.add(name)
        try:
            if not self._install_dependencies(pkg, depth, to_install, is_protected, from_user):
                if fail_early:
                    self.unmark(name)
                    self.discard_candidate(name)
                    self.cver_over.setdefault(name, pkg)
                    return False
                failed = True
        finally:
            if not is_protected:
                self.protected.discard(name)
        return not failed

    def _install_dependencies(
        self,
        pkg: BinaryPackage,
        depth: int,
        to_install: list[tuple[str, tuple[Relation, ...]]],
        propagate: bool,
        from_user: bool,
    ) -> bool:
        """MarkInstall_InstallDependencies: the first solution of each group that installs."""
        failed = False
        for label, group in to_install:
            found = self.satisfied(group, False, pkg.name)
            if found and not propagate:
                continue
            if found:
                # Protection spreads to the only possible solution of a satisfied dependency.
                sols = self._possible(group)
                if len(sols) != 1 or sols[0].name in self.protected:
                    continue
                self.protected.add(sols[0].name)
                if not self.mark_install(
                    sols[0].name, True, depth + 1, False, _why(label, pkg.name, group, sols[0])
                ):
                    failed = True
                continue
            sols = self.solutions(group)
            for sol in sols:
                if self.cand(sol.name) is not sol:
                    continue
                why = _why(label, pkg.name, group, sol)
                if propagate and len(sols) == 1:
                    if not self.mark_install(sol.name, False, depth + 1, False, why):
                        continue
                    self.protected.add(sol.name)
                if not self.mark_install(sol.name, True, depth + 1, False, why):
                    continue
                found = True
                break
            if not found:
                self.failures.setdefault(
                    pkg.name, f"its {label}: {_group_text(group)} cannot be satisfied"
                )
                failed = True
                if not propagate and not from_user:
                    break
        return not failed

    def _possible(self, group: tuple[Relation, ...]) -> list[BinaryPackage]:
        """getAllPossibleSolutions(CANDANDINST, unsorted), minus protected packages not marked."""
        seen: dict[int, BinaryPackage] = {}
        for rel in group:
            for p in self.solutions((rel,), negative=True):
                seen.setdefault(id(p), p)
            m = self.matches(rel, self.marked)
            if m is not None:
                seen.setdefault(id(m), m)
        return [
            p for p in seen.values() if not (p.name in self.protected and p.name not in self.marked)
        ]

    # ---------------------------------------------------------------- errors

    def explain_alt(self, rel: Relation, depth: int = 0) -> str:
        """Why one alternative of an unsatisfied dependency is not met."""
        versions = self.u.versions(rel.name)
        provs = [o for o, _ in self.provides.get(rel.name, ()) if self.base.get(o.name) is o]
        if not self._arch_ok(rel):
            return f"{rel} names architecture {rel.arch}, which is not {self.u.architecture}"
        if not versions and not provs:
            return f"no package provides {rel.name}"
        p = self.base.get(rel.name)
        if p is not None and not rel.satisfied_by(p.version) and not provs:
            return f"{rel.name} {p.version} does not satisfy ({rel.op} {rel.version})"
        if p is not None and rel.arch == "any" and p.multi_arch != "allowed":
            return f"{rel.name} is not Multi-Arch: allowed"
        for cand in ([p] if p is not None else []) + provs:
            why = self.failures.get(cand.name)
            if why is not None:
                return f"{cand.name} {cand.version} cannot be installed: {why}"
        return f"{rel} is not installable"


def _group_text(group: tuple[Relation, ...]) -> str:
    return " | ".join(str(r) for r in group)


def _why(label: str, parent: str, group: tuple[Relation, ...], sol: BinaryPackage) -> str:
    """The reason shown for a package pulled in by a dependency."""
    if any(rel.name == sol.name for rel in group):
        return f"{label} of {parent}"
    provided = {rel.name for g in sol.relations("provides") for rel in g}
    virtual = next((rel.name for rel in group if rel.name in provided), group[0].name)
    return f"provides {virtual} for {parent}"


_REQ_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9+.\-]*)(?::(?P<arch>[A-Za-z0-9\-]+))?"
    r"(?:=(?P<version>\S+))?$"
)


def _lookup(
    universe: DebianUniverse, spec: str, architecture: str
) -> tuple[str, BinaryPackage, str | None]:
    """Turn a request item into (name, package, note); raise the errors a user can act on."""
    m = _REQ_RE.match(spec.strip())
    if m is None:
        raise UnknownPackageError(
            f"cannot parse package request {spec!r}", hint="use NAME, NAME=VERSION or NAME:ARCH"
        )
    name, arch, version = m.group("name"), m.group("arch"), m.group("version")
    if arch is not None and arch not in (architecture, "native", "all", "any"):
        raise UnknownPackageError(
            f"package {name}:{arch} is not available: the snapshot is resolved for "
            f"architecture {architecture} only"
        )
    versions = universe.versions(name)
    if not versions:
        providers = sorted(
            {o.name for o, _ in universe.providers(name) if universe.candidates.get(o.name) is o}
        )
        if len(providers) == 1 and version is None:
            return providers[0], universe.candidates[providers[0]], f"provides {name}"
        if providers:
            raise UnknownPackageError(
                f"{name} is a virtual package provided by {', '.join(providers)}",
                hint="request one of the providers explicitly",
            )
        foreign = universe.foreign.get(name)
        if foreign:
            raise UnknownPackageError(
                f"package {name} is not available for architecture {architecture} "
                f"(it exists for {', '.join(foreign)})"
            )
        close = universe.suggest(name)
        raise UnknownPackageError(
            f"unable to locate package {name}",
            hint=f"did you mean {' or '.join(close)}?" if close else "check the package name",
        )
    if version is None:
        return name, versions[0], None
    for pkg in versions:
        if compare_debian_versions(pkg.version, version) == 0:
            return name, pkg, None
    raise UnknownPackageError(
        f"version {version} of package {name} is not in the snapshot",
        hint=f"available: {', '.join(p.version for p in versions)}",
    )


def resolve(universe: DebianUniverse, request: Request) -> Resolution:
    """The packages ``apt-get install --no-install-recommends`` would install on an empty system.

    The variant's seeds come first, then ``request.packages`` in the given
    order; that order matters exactly as it does for apt.
    """
    if request.architecture != universe.architecture:
        raise ResolveError(
            f"request is for architecture {request.architecture} but the package "
            f"universe was built for {universe.architecture}"
        )
    items: list[tuple[str, BinaryPackage, str]] = []
    index: dict[str, int] = {}
    for name, why in seed_packages(universe, request.variant):
        index[name] = len(items)
        items.append((name, universe.candidates[name], why))
    for spec in request.packages:
        try:
            name, pkg, note = _lookup(universe, spec, universe.architecture)
        except UnknownPackageError as exc:
            exc.request = spec
            raise
        why = "requested" if note is None else f"requested ({note})"
        if name in index:
            prev = items[index[name]]
            if prev[1] is not pkg and prev[1] is not universe.candidates.get(name):
                raise UnknownPackageError(
                    f"package {name} is requested in two versions: "
                    f"{prev[1].version} and {pkg.version}"
                )
            items[index[name]] = (name, pkg, why)
            continue
        index[name] = len(items)
        items.append((name, pkg, why))

    s = _Solver(universe)
    for name, pkg, _ in items:
        if pkg is not universe.candidates.get(name):  # a pin: SetCandidateVersion
            s.cand_over[name] = pkg
            s.cver_over[name] = pkg
    # TryToInstall: protect and mark every request, without dependencies ...
    for name, _, why in items:
        s.protected.add(name)
        s.mark_install(name, False, 0, True, why)
    # ... then doAutoInstall: each broken one pulls in its dependencies.
    for name, _, why in items:
        if s.inst_broken(name):
            s.mark_install(name, True, 0, True, why)
    _check(s, [name for name, _, _ in items])
    pkgs = tuple(sorted(s.marked.values(), key=lambda p: p.name))
    return Resolution(pkgs, MappingProxyType({p.name: s.reasons[p.name] for p in pkgs}))


def _check(s: _Solver, requested: list[str]) -> None:
    """Refuse a broken result the way apt does, with a message naming the culprits."""
    order = requested + sorted(n for n in s.marked if n not in set(requested))
    for name in order:
        pkg = s.marked.get(name)
        if pkg is None:
            why = s.failures.get(name, "it conflicts with another request")
            raise UnsatisfiableError(f"cannot install {name}: {why}")
        for label, negative, group in s.groups(pkg):
            if s.satisfied(group, negative, name):
                continue
            if negative:
                other = s.matches(group[0], s.marked, name)
                assert other is not None
                raise ConflictError(
                    f"{name} and {other.name} cannot be installed together: "
                    f"{name} {pkg.version} {label}: {group[0]}",
                    hint=_chain_hint(s, name, other.name),
                )
            reasons = "; ".join(s.explain_alt(rel) for rel in group)
            raise UnsatisfiableError(
                f"cannot install {name} {pkg.version}: {label}: {_group_text(group)} "
                f"cannot be satisfied ({reasons})",
                hint=_chain_hint(s, name),
            )


def _chain_hint(s: _Solver, *names: str) -> str | None:
    parts = [f"{n} is in because: {s.reasons[n]}" for n in names if n in s.reasons]
    return "; ".join(parts) or None
