"""The rootfs step: locked packages -> a configured, normalised tree.

The snapshot's distribution installs its packages
(:meth:`reprobuild.archives.formats.PackageFormat.install`: Debian as
mmdebstrap does, Arch Linux as pacstrap does). System settings (:mod:`.sysconfig`), recipe
additions (``files``, accounts, ``hostname``, ``remove``) and a way in
(:mod:`.access`) come next, then per-machine state is removed
(:mod:`.firstboot`), the tree normalised, and the result stored as the
canonical tar of the tree.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprobuild.archives.formats import package_format
from reprobuild.errors import ReprobuildError, UsageError
from reprobuild.normalise import normalise
from reprobuild.sandbox import SandboxSpec, run
from reprobuild.stepparams import RootfsParams
from reprobuild.steps.access import configure_access
from reprobuild.steps.firstboot import finalize, find_secrets
from reprobuild.steps.rootfiles import apply_owners, write_files
from reprobuild.steps.sysconfig import configure_system
from reprobuild.steps.treepaths import inside_tree, mkdirs, replaceable
from reprobuild.store import Output
from reprobuild.tree import read_canonical_tar, write_canonical_tar

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

TAR = "application/x-tar"


class RootfsError(ReprobuildError):
    """A root file system could not be assembled."""


def run_rootfs(step: BuildStep, params: RootfsParams, ctx: StepContext) -> tuple[Output, ...]:
    if step.package_format is None:
        raise RootfsError(f"rootfs '{step.name}': its snapshot's package format is not known")
    packages = package_format(step.package_format)
    tree = ctx.workdir / "root"
    tree.mkdir(mode=0o755)
    os.chmod(tree, 0o755)
    if params.base is not None:
        _extract_input(ctx, params.base.key, tree)
    packages.install(step, ctx, tree, params)
    configure_system(
        tree,
        params,
        apt_sources=step.system_sources,
        epoch=ctx.epoch,
        replaceable=replaceable,
    )
    _apply_recipe(tree, params, ctx)
    configure_access(tree, params, replaceable=replaceable, mkdirs=mkdirs)
    finalize(tree, replaceable=replaceable)
    normalise(tree, epoch=ctx.epoch, mode=params.normalise)
    ctx.secrets.extend(find_secrets(tree))
    out = ctx.workdir / "rootfs.tar"
    with out.open("wb") as f:
        write_canonical_tar(tree, f, epoch=ctx.epoch)
    blob = ctx.store.put_file(out)
    shutil.rmtree(tree, ignore_errors=True)
    return (Output("rootfs.tar", blob.sha256, blob.size, TAR),)


def _apply_recipe(tree: Path, params: RootfsParams, ctx: StepContext) -> None:
    def copy_source(ref: Mapping[str, Any], dest: Path) -> None:
        if "step" in ref:
            ctx.store.copy_to(ctx.input(ref["step"]).outputs[0].sha256, dest)
        else:
            shutil.copyfile(ctx.recipe_dir / str(ref["path"]), dest)

    owned = write_files(
        tree,
        params.files,
        copy_source=copy_source,
        replaceable=replaceable,
        mkdirs=mkdirs,
    )
    _accounts(tree, params.groups, params.users, ctx.epoch)
    apply_owners(tree, owned)
    hostname = params.hostname
    if hostname:
        dest = replaceable(tree, "/etc/hostname")
        dest.write_text(hostname + "\n")
        os.chmod(dest, 0o644)
    for pattern in params.remove:
        _remove(tree, pattern)


NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
USER_KEYS = {
    *("name", "uid", "gid", "group", "groups", "home", "shell", "comment", "system"),
    *("password_hash", "ssh_authorized_keys"),
}
GROUP_KEYS = {"name", "gid", "system"}


def _accounts(
    tree: Path,
    groups: Sequence[Mapping[str, Any]],
    users: Sequence[Mapping[str, Any]],
    epoch: int,
) -> None:
    """Add groups, then users, with the tree's own groupadd/useradd in the sandbox
    (they keep passwd, shadow, group and gshadow consistent); a tree without
    them gets plain passwd/group lines. Shadow dates are fixed by normalisation."""
    if not groups and not users:
        return
    for g in groups:
        _check_account(g, GROUP_KEYS, "groups")
    for u in users:
        _check_account(u, USER_KEYS, "users")
    if (tree / "usr/sbin/useradd").exists() and (tree / "usr/sbin/groupadd").exists():
        cmds = []
        for g in groups:
            args = ["groupadd"] + (["-g", str(g["gid"])] if "gid" in g else [])
            args += ["-r"] if g.get("system") else []
            cmds.append([*args, g["name"]])
        for u in users:
            args = ["useradd", "-m" if not u.get("system") else "-M"]
            for key, flag in (("uid", "-u"), ("home", "-d"), ("shell", "-s"), ("comment", "-c")):
                if key in u:
                    args += [flag, str(u[key])]
            if "group" in u:
                args += ["-g", str(u["group"])]
            elif "gid" in u:
                args += ["-g", str(u["gid"])]
            if u.get("groups"):
                args += ["-G", ",".join(u["groups"])]
            args += ["-r"] if u.get("system") else []
            cmds.append([*args, u["name"]])
        script = "set -e\n" + "\n".join(" ".join(shlex.quote(a) for a in c) for c in cmds) + "\n"
        run(
            SandboxSpec(
                root=tree,
                command=("/bin/sh", "-c", script),
                epoch=epoch,
                what="groupadd/useradd of the rootfs",
            )
        )
        return
    days = epoch // 86400
    lines: dict[str, list[str]] = {"group": [], "gshadow": [], "passwd": [], "shadow": []}
    gids = _read_ids(tree / "etc/group")
    for g in groups:
        if "gid" not in g:
            raise UsageError(f"groups: '{g['name']}' needs a gid (the tree has no groupadd)")
        lines["group"].append(f"{g['name']}:x:{g['gid']}:")
        lines["gshadow"].append(f"{g['name']}:!::")
        gids[g["name"]] = g["gid"]
    for u in users:
        gid = u.get("gid", gids.get(str(u.get("group", u["name"]))))
        if "uid" not in u or gid is None:
            raise UsageError(
                f"users: '{u['name']}' needs a uid and a gid or known group "
                "(the tree has no useradd)"
            )
        home = u.get("home", f"/home/{u['name']}")
        shell = u.get("shell", "/bin/sh")
        lines["passwd"].append(
            f"{u['name']}:x:{u['uid']}:{gid}:{u.get('comment', '')}:{home}:{shell}"
        )
        lines["shadow"].append(f"{u['name']}:!:{days}:0:99999:7:::")
        if not u.get("system"):
            h = tree / home.lstrip("/")
            inside_tree(tree, h / "x", home)
            mkdirs(tree, h.parent)
            if h.is_symlink():
                raise UsageError(f"users: home {home} of '{u['name']}' is a symlink in the tree")
            h.mkdir(exist_ok=True)
            os.chmod(h, 0o755)
            os.chown(h, u["uid"], gid)
    for name, new in lines.items():
        f = tree / "etc" / name
        inside_tree(tree, f, f"/etc/{name}")
        if f.is_symlink():
            raise UsageError(f"users: /etc/{name} is a symlink in the tree; not appending to it")
        if new and (f.exists() or name in ("group", "passwd")):
            with f.open("a") as out:
                out.write("".join(line + "\n" for line in new))


def _read_ids(path: Path) -> dict[str, int]:
    ids: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and parts[2].isdigit():
                ids[parts[0]] = int(parts[2])
    return ids


def _check_account(entry: Mapping[str, Any], keys: set[str], what: str) -> None:
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(f"{what}: each entry needs a valid name (got {name!r})")
    unknown = sorted(set(entry) - keys)
    if unknown:
        raise UsageError(f"{what}: unknown attribute(s) {', '.join(unknown)} for '{name}'")
    for key in ("uid", "gid"):
        if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool)):
            raise UsageError(f"{what}: {key} of '{name}' must be an integer")


def _remove(tree: Path, pattern: str) -> None:
    """Delete paths matching a glob (``/usr/share/doc/*``), never following links out."""
    pat = pattern.lstrip("/")
    for dirpath, dirnames, filenames in os.walk(tree, topdown=True):
        rel_dir = os.path.relpath(dirpath, tree)
        for name in sorted(dirnames + filenames):
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if fnmatch.fnmatchcase(rel, pat):
                full = os.path.join(dirpath, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                    if name in dirnames:
                        dirnames.remove(name)
                else:
                    os.unlink(full)


def _extract_input(ctx: StepContext, key: str, tree: Path) -> None:
    record = ctx.input(key)
    tmp = ctx.workdir / "base"
    with ctx.store.open_blob(record.outputs[0].sha256) as f:
        read_canonical_tar(f, tmp)
    for entry in sorted(os.listdir(tmp)):
        os.rename(tmp / entry, tree / entry)
    st = os.stat(tmp)
    os.chmod(tree, st.st_mode & 0o7777)
    os.rmdir(tmp)
