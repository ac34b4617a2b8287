"""debootstrap's choice of packages, for ``rootfs { installer = "debootstrap"; }``.

debootstrap does not resolve as apt does. Its ``work_out_debs`` (scripts/
debian-common) and ``resolve_deps`` (functions), with the perl helpers
``GETDEPS`` and ``PKGS REAL``, reduced to what they compute:

* **required** is every package of the index whose ``Priority`` is exactly
  ``required``; on bookworm ``usr-is-merged`` is added (debootstrap's
  merged-/usr marker) and, from bookworm on, ``usrmerge`` is never pulled in
  as a dependency (``EXCLUDE_DEPENDENCY``).
* **base** is ``apt`` for the ``minbase`` variant, plus ``ca-certificates``
  when the mirror is ``https://``, plus ``--include`` names, resolved, minus
  required.
* **resolving** repeatedly adds, for each new name, the *first* alternative
  of every ``Depends`` and ``Pre-Depends`` group, version constraints and
  ``:arch`` qualifiers dropped, keeping only names that are real packages of
  the index (a virtual name is silently dropped: no provider is chosen).
  Only the first line of a relation field is read, as ``GETDEPS`` reads it.

All lists are sorted bytewise (``sort | uniq`` with ``LC_ALL=C``), which is
also the order debootstrap extracts and unpacks them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprobuild.archives.debian.index import BinaryPackage, parse_relations
from reprobuild.errors import ResolveError, UsageError

if TYPE_CHECKING:
    from reprobuild.archives.debian.lock import SnapshotIndex
    from reprobuild.lockfile import LockedPackage

__all__ = [
    "DEBOOTSTRAP_VARIANTS",
    "DebootstrapChoice",
    "choose",
    "debootstrap_mirror",
    "lock_debootstrap",
    "resolve_deps",
]

DEBOOTSTRAP_VARIANTS = ("minbase",)
"""The variants implemented (debuerreotype uses minbase)."""

# Suites where debootstrap 1.0.128 neither adds usr-is-merged nor excludes usrmerge.
_BEFORE_BOOKWORM = frozenset(
    {"etch", "lenny", "squeeze", "wheezy", "jessie", "stretch", "buster", "bullseye"}
)


@dataclass(frozen=True)
class DebootstrapChoice:
    """The two package lists debootstrap works with, each sorted bytewise."""

    required: tuple[str, ...]
    base: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(sorted({*self.required, *self.base}))


def _first_line_relation_names(text: str) -> list[str]:
    """GETDEPS: the first alternative of each group, without version or arch."""
    first = text.split("\n", 1)[0]
    if not first.strip():
        return []
    out = []
    for group in parse_relations(first):
        if group:
            out.append(group[0].name)
    return out


def resolve_deps(
    names: Iterable[str], index: Mapping[str, BinaryPackage], exclude: Iterable[str] = ()
) -> tuple[str, ...]:
    """``resolve_deps``: the names and the closure of their first-alternative dependencies."""
    excluded = set(exclude)
    all_pkgs = set(names)
    todo = set(all_pkgs)
    while todo:
        new: set[str] = set()
        for name in todo:
            pkg = index.get(name)
            if pkg is None:
                continue
            for text in (pkg.depends, pkg.pre_depends):
                new.update(_first_line_relation_names(text))
        new -= excluded
        real = {n for n in todo | new if n in index}
        todo = real - all_pkgs
        all_pkgs |= real
    return tuple(sorted(all_pkgs, key=lambda n: n.encode()))


def _codename_rules(codename: str) -> tuple[list[str], list[str]]:
    """(extra required, excluded dependencies) of debian-common's work_out_debs."""
    name = codename.split("-", 1)[0]
    if name in _BEFORE_BOOKWORM:
        return [], []
    if name == "bookworm":
        return ["usr-is-merged"], ["usrmerge"]
    return [], ["usrmerge"]


def choose(
    packages: Sequence[BinaryPackage],
    *,
    variant: str,
    include: Sequence[str],
    codename: str,
    mirror: str,
) -> DebootstrapChoice:
    """What ``debootstrap --variant=VARIANT --include=...`` installs from *packages*."""
    if variant not in DEBOOTSTRAP_VARIANTS:
        raise UsageError(
            f'installer "debootstrap" implements variant {", ".join(DEBOOTSTRAP_VARIANTS)} '
            f"(debootstrap --variant=minbase, as debuerreotype uses), not {variant!r}"
        )
    index: dict[str, BinaryPackage] = {}
    for p in packages:
        index.setdefault(p.name, p)
    for name in include:
        if "=" in name or name.startswith("-"):
            raise UsageError(
                f'installer "debootstrap": package {name!r}: debootstrap takes plain names '
                "(--include=a,b), not versions"
            )
    extra_required, exclude_dependency = _codename_rules(codename)
    required = [p.name for p in packages if p.priority == "required"] + extra_required
    base = ["apt"]
    if mirror.startswith("https://"):
        base.append("ca-certificates")
    base += list(include)
    req = resolve_deps(sorted(set(required)), index, exclude_dependency)
    b = resolve_deps(sorted(set(base)), index, exclude_dependency)
    missing = sorted(n for n in {*req, *b} if n not in index)
    if missing:
        raise ResolveError(
            f"debootstrap would need {', '.join(missing)}, which the index does not have",
            hint="check the package names (debootstrap cannot install virtual packages)",
        )
    req_set = set(req)
    return DebootstrapChoice(required=req, base=tuple(n for n in b if n not in req_set))


def debootstrap_mirror(template: str | None, snapshot_url: str, timestamp: str) -> str:
    """The mirror string debootstrap is given: the template with ``{timestamp}``
    filled in, or the snapshot's canonical URL; never with a trailing slash
    (debootstrap strips it)."""
    mirror = snapshot_url if template is None else template.replace("{timestamp}", timestamp)
    return mirror.rstrip("/")


def lock_debootstrap(params: Mapping[str, Any], snap: SnapshotIndex) -> list[LockedPackage]:
    """The lockfile members of a rootfs with ``installer = "debootstrap"``."""
    from reprobuild.lockfile import LockedPackage

    lock = snap.lock
    if len(lock.suites) != 1 or len(lock.components) != 1:
        raise UsageError(
            f"installer \"debootstrap\": snapshot '{lock.name}' must have one suite and one "
            f"component (it has {len(lock.suites)} and {len(lock.components)})"
        )
    pool = snap.packages()
    mirror = debootstrap_mirror(params.get("mirror"), lock.url, lock.timestamp)
    choice = choose(
        pool,
        variant=params.get("variant") or "minbase",
        include=list(params.get("packages") or ()),
        codename=lock.suites[0].suite,
        mirror=mirror,
    )
    by_name: dict[str, BinaryPackage] = {}
    for p in pool:
        by_name.setdefault(p.name, p)
    return [
        LockedPackage(
            name=p.name,
            version=p.version,
            architecture=p.architecture,
            filename=p.filename,
            size=p.size,
            sha256=p.sha256,
            snapshot=lock.name,
        )
        for p in (by_name[n] for n in choice.all)
    ]
