"""Verifying an image reprobuild built: rebuild it from the lockfile it carries.

The lockfile (found by :mod:`reprobuild.verify.referrers`) embeds the recipe
files (the files its steps take by path come as another referrer); they are
written to a work directory with the lockfile beside the top-level one (the
file whose sha256 the lockfile records), and built with ``--locked`` at the
epoch the image shows in ``org.opencontainers.image.created``. The named
output's manifest digest must be the image's.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from reprobuild.errors import LockfileError
from reprobuild.locking import Sources
from reprobuild.verify.compare import Summary, compare_trees, deb_member
from reprobuild.verify.referrers import Description
from reprobuild.verify.target import Target, open_layout

if TYPE_CHECKING:
    from reprobuild.verify.result import VerifyResult

__all__ = ["verify_own"]


def _write_recipe(description: Description, work: Path) -> Path:
    lock = description.lockfile
    if not lock.embedded:
        raise LockfileError(
            "the image's lockfile does not embed its recipe; it cannot be rebuilt from it alone"
        )
    top = None
    root = work / "recipe"
    for rel, text in sorted(lock.embedded.items()):
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts:
            raise LockfileError(f"embedded recipe file {rel!r} leaves the recipe tree")
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        if hashlib.sha256(text.encode("utf-8")).hexdigest() == lock.recipe:
            top = dest
    if top is None:
        raise LockfileError("none of the embedded recipe files is the one the lockfile records")
    if description.inputs is not None:
        from reprobuild.export.inputs import unpack_inputs

        unpack_inputs(description.inputs, root)
    # Recorded outputs are what is being checked, not an expectation to build against.
    top.with_name(top.name + ".lock").write_text(replace(lock, outputs={}).dumps())
    return top


def _epoch(target: Target) -> int | None:
    created = target.annotations.get("org.opencontainers.image.created")
    if not created:
        return None
    return int(datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z").timestamp())


def verify_own(
    target: Target,
    description: Description,
    work: Path,
    sources: Sources,
    store_path: Path | None,
    jobs: int | None,
) -> VerifyResult:
    from reprobuild import api
    from reprobuild.verify.result import VerifyResult, locked_debs

    recipe = _write_recipe(description, work)
    built = api.build(
        recipe,
        out_dir=work / "out",
        store_path=store_path,
        sources=sources,
        locked=True,
        jobs=jobs,
        epoch=_epoch(target),
    )
    found = [o for o in built.outputs if o.name == description.output]
    if not found:
        raise LockfileError(
            f"the image says it is output '{description.output}', which its recipe does not have"
        )
    out = found[0]
    rebuilt = out.sha256 if out.sha256.startswith("sha256:") else "sha256:" + out.sha256
    provenance = {
        "lockfile": description.lock_digest,
        "output": description.output,
        "recipe": recipe.name,
        "found": description.source,
    }
    compared = {"target": "the image manifest", "rebuilt": "the rebuilt image manifest"}
    if rebuilt == target.digest:
        n = len(target.members)
        return VerifyResult(
            target.spec, target.digest, rebuilt, True, "reprobuild referrers", provenance,
            Summary(n, n), compared=compared,
        )  # fmt: skip
    with open_layout(str(out.path), out.path, None) as ours:
        debs = locked_debs(description.lockfile, store_path)

        def package_file(package: str, path: str) -> bytes | None:
            deb = debs.get(package)
            return deb_member(deb, path) if deb is not None else None

        differences, summary = compare_trees(
            target.members, ours.members, read_image=target.read, read_rebuild=ours.read,
            package_file=package_file,
        )  # fmt: skip
    notes = (
        ("the trees are identical; the manifests differ (configuration or annotations)",)
        if not differences
        else ()
    )
    return VerifyResult(
        target.spec, target.digest, rebuilt, False, "reprobuild referrers", provenance, summary,
        tuple(differences), notes, compared=compared,
    )  # fmt: skip
