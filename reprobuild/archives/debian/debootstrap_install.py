"""The rootfs step's side of ``installer = "debootstrap"``: inputs in, procedure run.

The build graph gives the step the InRelease and Packages index the lockfile
pinned (``index`` steps, fetched by sha256) besides the packages. Here the
package lists are chosen again from that index, exactly as the lock chose
them, and the locked set must be the same: a lockfile edited by hand, or
made by another resolver, is refused rather than built into a root that
debootstrap would not make.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reprobuild.archives.debian.debootstrap import DebootstrapInputs, install, split_inline_sig
from reprobuild.archives.debian.debootstrap_resolve import choose
from reprobuild.archives.debian.index import decompress_index, parse_packages, parse_release
from reprobuild.archives.debian.unpack import DebPackage, read_deb

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext
    from reprobuild.stepparams import RootfsParams


def install_debootstrap(
    step: BuildStep, ctx: StepContext, tree: Path, params: RootfsParams
) -> None:
    spec = step.data["debootstrap"]
    inrelease = ctx.store.read_bytes(spec["inrelease"]["sha256"])
    index = decompress_index(
        spec["packages"]["path"], ctx.store.read_bytes(spec["packages"]["sha256"])
    )
    release = parse_release(
        split_inline_sig(inrelease)[0].decode("utf-8", "replace"), what=spec["inrelease"]["path"]
    )
    choice = choose(
        parse_packages(index, what=spec["packages"]["path"]),
        variant=params.variant or "minbase",
        include=list(params.packages),
        codename=release.codename or spec["suite"],
        mirror=spec["mirror"],
    )
    wanted = {p.sha256 for p in step.pinned_packages}
    debs: dict[str, tuple[DebPackage, Path]] = {}
    for key, record in sorted(ctx.inputs.items()):
        if record.kind == "fetch" and key in wanted:
            path = ctx.store.path_of(record.outputs[0].sha256)
            deb = read_deb(path)
            debs[deb.name] = (deb, path)
    install(
        tree,
        DebootstrapInputs(
            choice=choice,
            debs=debs,
            packages_index=index,
            inrelease=inrelease,
            mirror=spec["mirror"],
            suite=spec["suite"],
            component=spec["component"],
            arch=spec["arch"],
        ),
        ctx.epoch,
        ctx.log,
    )
