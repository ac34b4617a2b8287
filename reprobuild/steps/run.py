"""The ``run`` step: a script in the sandbox, on a fresh copy of a root.

The root (a canonical tar in the store) is extracted into a private
directory that the script may change freely: the stored root is never
touched, so the step is pure. Declared inputs are copied into the step's
work directory first (exactly the bytes whose hashes are in the step key)
and bound read-only at ``/inputs/NAME``; the script starts in ``/build``
(empty, writable, removed afterwards) with no network. The result is the
whole new tree, or only the paths listed in ``outputs``, normalised and
stored as a canonical tar.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from reprobuild.errors import ReprobuildError, UsageError
from reprobuild.normalise import normalise
from reprobuild.safecopy import copy_file, copy_tree
from reprobuild.sandbox import Bind, SandboxSpec, inside, remove_inside, run
from reprobuild.stepparams import FileRef, RunParams, StepRef
from reprobuild.store import Output
from reprobuild.tree import read_canonical_tar, write_canonical_tar

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

TAR = "application/x-tar"
RUN_TIMEOUT = 6 * 3600.0


class RunStepError(ReprobuildError):
    """A run step's script failed or its outputs are missing."""


def run_run(step: BuildStep, params: RunParams, ctx: StepContext) -> tuple[Output, ...]:
    tree = ctx.workdir / "root"
    with ctx.store.open_blob(ctx.input(params.root.key).outputs[0].sha256) as f:
        read_canonical_tar(f, tree)
    binds = _inputs(params.inputs, ctx)
    build_dir = tree / "build"
    if build_dir.exists() or build_dir.is_symlink():
        raise RunStepError("the root already has /build; run steps use it as their work directory")
    build_dir.mkdir(mode=0o755)
    env = dict(sorted(params.env.items()))
    for name in sorted(params.inputs):
        env.setdefault(f"input_{name}", f"/inputs/{name}")
    run(
        SandboxSpec(
            root=tree,
            command=("/bin/sh", "-e", "-c", params.script),
            epoch=ctx.epoch,
            env=env,
            binds=tuple(binds),
            workdir="/build",
            tmpfs=_tmpfs(params.tmpfs),
            what=f"run step '{step.name}'",
        ),
        timeout=RUN_TIMEOUT,
    )
    # The script may have left links to "/" anywhere: clean up as it saw the tree.
    remove_inside(tree, "/build")
    _remove_mount_points(tree, binds)
    outputs = params.outputs
    result = tree if not outputs else _select(tree, outputs, ctx.workdir / "selected")
    normalise(result, epoch=ctx.epoch, mode=params.normalise)
    out = ctx.workdir / "result.tar"
    with out.open("wb") as f:
        write_canonical_tar(result, f, epoch=ctx.epoch)
    blob = ctx.store.put_file(out)
    return (Output("rootfs.tar" if not outputs else "outputs.tar", blob.sha256, blob.size, TAR),)


def _tmpfs(paths: Sequence[str] | None) -> tuple[str, ...]:
    if paths is None:
        return ("/tmp", "/run")
    for p in paths:
        rel = PurePosixPath(p)
        if not rel.is_absolute() or ".." in rel.parts or rel == PurePosixPath("/"):
            raise UsageError(f"run: tmpfs {p!r} must be an absolute path below / without '..'")
    return tuple(paths)


def _inputs(inputs: Mapping[str, StepRef | FileRef], ctx: StepContext) -> list[Bind]:
    binds = []
    staged = ctx.workdir / "inputs"
    for name in sorted(inputs):
        value = inputs[name]
        if not name.replace("-", "_").replace(".", "_").isidentifier():
            raise UsageError(f"run: input name {name!r} must be a simple name")
        dest = staged / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, StepRef):
            record = ctx.input(value.key)
            ctx.store.copy_to(record.outputs[0].sha256, dest)
        elif value.sha256 is not None:
            copy_file(ctx.recipe_dir / value.path, dest, "a run step's input")
        elif value.tree_sha256 is not None:
            copy_tree(ctx.recipe_dir / value.path, dest, "a run step's input")
        else:
            raise UsageError(f"run: input {name!r} must be a path or a step")
        binds.append(Bind(dest, f"/inputs/{name}", "ro"))
    return binds


def _remove_mount_points(tree: Path, binds: list[Bind]) -> None:
    """bwrap created empty mount points for the inputs; they are not the result."""
    for b in binds:
        p = inside(tree, b.target)
        if p is None:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.is_file() and not p.is_symlink() and p.stat().st_size == 0:
            p.unlink()
    inputs = inside(tree, "/inputs")
    empty = inputs is not None and inputs.is_dir() and not inputs.is_symlink()
    if inputs is not None and empty and not any(inputs.iterdir()):
        inputs.rmdir()


def _select(tree: Path, outputs: Sequence[str], dest: Path) -> Path:
    """A new tree holding only the listed paths (with their parent directories)."""
    dest.mkdir(mode=0o755)
    os.chmod(dest, 0o755)
    for item in sorted(outputs):
        rel = PurePosixPath(item.lstrip("/"))
        if ".." in rel.parts or not rel.parts:
            raise UsageError(f"run: output {item!r} must be an absolute path without '..'")
        # Links on the way are followed as in the sandbox: never to the host's files.
        found = inside(tree, item)
        if found is None:
            raise RunStepError(f"run: the script did not create {item}")
        src = found
        target = dest / rel
        parent = target.parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for d in reversed(missing):
            d.mkdir()
            os.chmod(d, 0o755)
        if src.is_dir() and not src.is_symlink():
            copy_tree(src, target, "a run step's outputs")
        elif src.is_symlink():
            shutil.copy2(src, target, follow_symlinks=False)
        else:
            copy_file(src, target, "a run step's outputs")
    return dest
