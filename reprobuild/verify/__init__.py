"""``reprobuild verify TARGET``: rebuild what another party published and compare.

1. :mod:`reprobuild.verify.target` opens the target (tarball, OCI layout,
   image archive, registry reference) as a tree.
2. How it was made: an image reprobuild built names its lockfile in its
   manifest annotations and carries it as an OCI referrer
   (:mod:`reprobuild.verify.referrers`): it is rebuilt from that lockfile.
   Otherwise a Debian root is identified from its contents
   (:mod:`reprobuild.verify.debian`) and rebuilt with
   ``recipes/lib/debuerreotype.repro``, locked at the snapshot it names; an
   Arch Linux root (:mod:`reprobuild.verify.arch`) with
   ``recipes/lib/archlinux-docker.repro`` from the archive of its epoch's day.
3. The verdict: ``identical`` when the digests are equal (the tarball's, or
   the image manifest's), else every differing path attributed
   (:mod:`reprobuild.verify.compare`).

Exit codes (cli): 0 identical, 1 differs, 2 bad input (not an image, an
unknown distribution, a snapshot or package that cannot be found).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from reprobuild.errors import ReprobuildError
from reprobuild.locking import Sources
from reprobuild.verify.compare import Summary, alpm_member, compare_trees, deb_member
from reprobuild.verify.result import VerifyResult, locked_debs
from reprobuild.verify.target import Target, open_target, read_tarball

__all__ = ["LIBRARY_DIR", "VerifyResult", "library_dir", "verify"]


LIBRARY_DIR = Path(__file__).parent / "library"
"""The recipe library (``debuerreotype.repro``, ``archlinux-docker.repro``): in a
checkout the repository's ``recipes/lib`` (through the ``library`` link), in a
wheel its package data."""


def library_dir() -> Path:
    """The recipe library verify rebuilds with (see :data:`LIBRARY_DIR`)."""
    found = LIBRARY_DIR.resolve()
    if not (found / "debuerreotype.repro").is_file():
        raise ReprobuildError(
            f"the recipe library is not at {found}",
            hint="reinstall reprobuild (its package data carries recipes/lib)",
        )
    return found


def verify(
    spec: str,
    *,
    sources: Sources | None = None,
    store_path: Path | None = None,
    tls_verify: bool = True,
    jobs: int | None = None,
) -> VerifyResult:
    """Rebuild TARGET from what it says about itself and compare (see the module doc)."""
    sources = sources or Sources.from_env()
    with (
        open_target(spec, tls_verify=tls_verify) as target,
        tempfile.TemporaryDirectory(prefix="reprobuild-verify-work-") as work,
    ):
        from reprobuild.verify.referrers import find_description

        description = find_description(target, tls_verify=tls_verify)
        if description is not None:
            from reprobuild.verify.own import verify_own

            return verify_own(target, description, Path(work), sources, store_path, jobs)
        return _verify_identified(target, Path(work), sources, store_path, jobs)


def _verify_identified(
    target: Target, work: Path, sources: Sources, store_path: Path | None, jobs: int | None
) -> VerifyResult:
    """A root another tool made (debuerreotype, archlinux-docker), rebuilt with the library."""
    from reprobuild import api
    from reprobuild import lockfile as lf
    from reprobuild.verify.arch import ArchRoot, identify_arch, is_arch, recipe_for_arch
    from reprobuild.verify.debian import DebianRoot, identify_debian, recipe_for

    root: ArchRoot | DebianRoot
    if is_arch(target) and "var/lib/dpkg/status" not in target.members:
        root = identify_arch(target)
        text, library = recipe_for_arch(root), "archlinux-docker.repro"
    else:
        root = identify_debian(target)
        text, library = recipe_for(root), "debuerreotype.repro"
    method = root.tool
    shutil.copytree(library_dir(), work / "lib")
    recipe = work / "verify.repro"
    recipe.write_text(text)
    lock = api.lock(recipe, sources=sources).lockfile
    notes = _package_notes(root.packages, lock)
    built = api.build(
        recipe, out_dir=work / "out", store_path=store_path, sources=sources, jobs=jobs,
        locked=True, epoch=root.epoch,
    )  # fmt: skip
    out = next(o for o in built.outputs if o.name == "rootfs")
    rebuilt_members, rebuilt_tar = read_tarball(out.path)
    target_tar = target.tar_digest or target.digest
    identical = rebuilt_tar == target_tar
    provenance = root.describe()
    compared = {
        "target": "sha256 of the uncompressed tar"
        if target.kind == "tarball"
        else "the layer's tar",
        "rebuilt": f"{library}'s rootfs.tar",
    }
    if identical:
        summary = Summary(len(target.members), len(target.members))
        return VerifyResult(
            target.spec, target_tar, rebuilt_tar, True, method, provenance, summary,
            notes=tuple(notes), recipe=text, compared=compared,
        )  # fmt: skip
    rebuilt = Target(spec=str(out.path), kind="tarball", digest=rebuilt_tar,
                     members=rebuilt_members, _layers=[out.path])  # fmt: skip
    debs = locked_debs(lock, store_path)

    member = deb_member if isinstance(root, DebianRoot) else alpm_member

    def package_file(package: str, path: str) -> bytes | None:
        file = debs.get(package)
        return member(file, path) if file is not None else None

    differences, summary = compare_trees(
        target.members, rebuilt_members, read_image=target.read, read_rebuild=rebuilt.read,
        package_file=package_file,
    )  # fmt: skip
    assert isinstance(lock, lf.Lockfile)
    if not differences:
        # Every path the same, the archive's bytes not: a layer re-made by another
        # tar writer (``docker build``'s ADD, say), not the tool's tar itself.
        notes.append(
            "every path is identical; the tar archives differ in their encoding "
            "(member order, headers or padding)"
        )
    return VerifyResult(
        target.spec, target_tar, rebuilt_tar, False, method, provenance, summary,
        tuple(differences), tuple(notes), text, str(out.path), compared,
    )  # fmt: skip


def _package_notes(installed: dict[str, str], lock: Any) -> list[str]:
    """Where the snapshot's package set is not the image's (named before any byte)."""
    locked = {p.name: p.version for p in lock.packages}
    notes = []
    for name in sorted(set(installed) | set(locked)):
        a, b = installed.get(name), locked.get(name)
        if a != b:
            notes.append(
                f"package {name}: image has {a or 'none'}, the snapshot gives {b or 'none'}"
            )
    return notes
