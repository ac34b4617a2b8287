"""After a build: each OCI image gets what it needs to be rebuilt, as its referrers.

The lockfile with the recipe files embedded, the files its steps take by
path (:mod:`reprobuild.export.inputs`) and an SPDX SBOM go into the image's
OCI layout (see :mod:`reprobuild.export.referrers`); ``out/NAME.tar`` stays
the image alone, for the tools (skopeo's ``oci-archive:``, ``podman load``)
that take one image per archive.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reprobuild.lockfile import Lockfile
    from reprobuild.outputs import BuiltOutput
    from reprobuild.plan import Plan

__all__ = ["describe_images"]


def describe_images(
    outputs: list[BuiltOutput],
    lock: Lockfile,
    lock_file: Path,
    root: Path,
    recipe_files: list[Path],
    plan: Plan,
    epoch: int,
) -> None:
    """Attach the referrers to every OCI image among *outputs* (layouts only)."""
    from reprobuild import sbom
    from reprobuild.export.inputs import input_paths, pack_inputs
    from reprobuild.export.referrers import attach_referrers

    images = [o for o in outputs if o.kind == "oci_image" and o.path.is_dir()]
    if not images:
        return
    texts = {os.path.relpath(f, root): f.read_text(encoding="utf-8") for f in recipe_files}
    described = replace(lock, embedded=texts)
    inputs = pack_inputs(root, input_paths([s.param_data() for s in plan.steps.values()], root))
    for o in images:
        spdx = sbom.dumps(sbom.sbom(lock, o.name, "spdx")).encode()
        attach_referrers(o.path, described, lock_file.name, spdx, epoch, inputs)
