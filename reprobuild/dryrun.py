"""``build --dry-run``: what a build would do, without doing it.

The recipe is evaluated and locked in memory (a missing or stale lockfile is
resolved but not written), the build graph is expanded, and each step is
looked up in the store: the steps that would run, the packages that would
be fetched (name, version, size) and those the store already has.
Nothing is written: not the lockfile, not the store, not ``out/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprobuild.stepparams import FetchParams

if TYPE_CHECKING:
    from reprobuild.fetch import Fetcher
    from reprobuild.locking import Sources


@dataclass(frozen=True)
class PlannedStep:
    kind: str
    name: str
    key: str
    cached: bool


@dataclass(frozen=True)
class PlannedPackage:
    name: str
    version: str
    architecture: str
    size: int
    stored: bool  # already in the store: not fetched


@dataclass(frozen=True)
class DryRun:
    recipe: str
    lock_notes: tuple[str, ...]  # what a real build would write to the lockfile
    steps: tuple[PlannedStep, ...]
    packages: tuple[PlannedPackage, ...]

    @property
    def fetch_bytes(self) -> int:
        return sum(p.size for p in self.packages if not p.stored)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "lockfile": list(self.lock_notes),
            "steps": [vars(s) for s in self.steps],
            "packages": [vars(p) for p in self.packages],
            "fetch_bytes": self.fetch_bytes,
        }


def dry_run(
    path: Path,
    *,
    store_path: Path | None,
    sources: Sources,
    fetcher: Fetcher,
    locked: bool = False,
) -> DryRun:
    from reprobuild import api
    from reprobuild.buildgraph import expand
    from reprobuild.errors import StoreError
    from reprobuild.store import Store

    pr = api.planned(path)
    lock, notes = api.locked_for_build(
        pr, locked=locked, sources=sources, fetcher=fetcher, write=False
    )
    notes = [
        line.replace("created ", "would create ", 1).replace("updated ", "would update ", 1)
        for line in notes
    ]
    graph = expand(pr.plan, lock, api.build_epoch(lock))
    try:
        store: Any = Store.open_store(store_path, create=False)
    except StoreError:
        store = None
    steps = []
    packages = []
    try:
        for step in graph.order():
            cached = store is not None and store.lookup_step(step.key) is not None
            params = step.params
            if isinstance(params, FetchParams) and params.package is not None:
                p = params.package
                packages.append(PlannedPackage(p.name, p.version, p.architecture, p.size, cached))
            else:
                steps.append(PlannedStep(step.kind, step.name, step.key, cached))
    finally:
        if store is not None:
            store.close()
    return DryRun(path.name.removesuffix(".repro"), tuple(notes), tuple(steps), tuple(packages))
