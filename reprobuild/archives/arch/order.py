"""The order pacman installs a set of Arch packages in: dependencies first
(split from :mod:`.install`)."""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

if TYPE_CHECKING:
    from reprobuild.archives.arch.install import PkgDesc

__all__ = ["install_order"]


# --------------------------------------------------------------------------
# Install order
# --------------------------------------------------------------------------


class _HasInfo(Protocol):
    @property
    def info(self) -> PkgDesc: ...


_P = TypeVar("_P", bound=_HasInfo)
_DEP_NAME: Final = re.compile(r"^([^<>=]+)")


def _dep_name(text: str) -> str:
    """The name part of ``name[<>=]version[: description]``."""
    match = _DEP_NAME.match(text.split(": ", 1)[0])
    return match.group(1).strip() if match else text


def install_order(packages: Sequence[_P]) -> list[_P]:
    """Dependencies first, ties (and dependency cycles) broken by name.

    A dependency counts when a package of the set has its name or provides
    it. A cycle is entered at its alphabetically first package, as a stable
    stand-in for pacman's "dependency cycle detected" order.
    """
    by_name = {p.info.name: p for p in packages}
    if len(by_name) != len(packages):
        raise ValueError("install_order: two packages have the same name")
    providers: dict[str, set[str]] = {}
    for p in packages:
        providers.setdefault(p.info.name, set()).add(p.info.name)
        for prov in p.info.provides:
            providers.setdefault(_dep_name(prov), set()).add(p.info.name)
    needs: dict[str, set[str]] = {n: set() for n in by_name}
    for p in packages:
        for dep in p.info.depends:
            wanted = _dep_name(dep)
            found = {wanted} if wanted in by_name else providers.get(wanted, set())
            needs[p.info.name] |= found - {p.info.name}
    users: dict[str, set[str]] = {n: set() for n in by_name}
    for name, deps in needs.items():
        for dep in deps:
            users[dep].add(name)
    ready = [n for n, deps in needs.items() if not deps]
    heapq.heapify(ready)
    order: list[str] = []
    left = dict(needs)
    while left:
        if not ready:
            heapq.heappush(ready, min(left))
        name = heapq.heappop(ready)
        if name not in left:
            continue
        del left[name]
        order.append(name)
        for user in sorted(users[name]):
            if user in left:
                left[user].discard(name)
                if not left[user]:
                    heapq.heappush(ready, user)
    return [by_name[n] for n in order]
