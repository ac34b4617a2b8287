"""The rootfs step: locked packages -> a configured, normalised tree.

Debian, as mmdebstrap does it: merged-/usr links first, every package
unpacked in-process and registered as dpkg would (``install ok unpacked``),
then, when dpkg is in the set, each ``preinst install`` and ``dpkg
--configure -a`` run chrooted in the sandbox (no network, services
forbidden by a policy-rc.d). System settings (:mod:`.sysconfig`), recipe
additions (``files``, accounts, ``hostname``, ``remove``) and a way in
(:mod:`.access`) come next, then per-machine state is removed
(:mod:`.firstboot`), the tree normalised, and the result stored as the
canonical tar of the tree.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import shlex
import shutil
import stat
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import networkx as nx

from reprobuild.archives.arch.install import (
    install_order,
    read_alpm_package,
    run_scriptlets,
    unpack_package,
    write_local_db,
)
from reprobuild.archives.debian.dpkgdb import init_admindir, record_unpacked
from reprobuild.archives.debian.index import parse_relations
from reprobuild.archives.debian.unpack import (
    DebPackage,
    decompressed_data,
    read_deb,
    setup_merged_usr,
    unpack_data,
)
from reprobuild.errors import ReprobuildError, UsageError
from reprobuild.normalise import normalise
from reprobuild.sandbox import SandboxSpec, remove_inside, run
from reprobuild.steps.access import configure_access
from reprobuild.steps.firstboot import finalize, find_secrets
from reprobuild.steps.rootfiles import apply_owners, write_files
from reprobuild.steps.sysconfig import configure_system
from reprobuild.store import Output
from reprobuild.tree import read_canonical_tar, write_canonical_tar

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

TAR = "application/x-tar"
POLICY_RC_D = (
    b"#!/bin/sh\n# installed by reprobuild while configuring: no service starts\nexit 101\n"
)
CONFIGURE_TIMEOUT = 1800.0


class RootfsError(ReprobuildError):
    """A root file system could not be assembled."""


def run_rootfs(step: BuildStep, ctx: StepContext) -> tuple[Output, ...]:
    params = step.data["params"]
    fmt = step.data.get("format")
    if fmt not in ("deb", "alpm"):
        raise RootfsError(f"unknown package format {fmt!r}")
    tree = ctx.workdir / "root"
    tree.mkdir(mode=0o755)
    os.chmod(tree, 0o755)
    base = params.get("base")
    if base:
        _extract_input(ctx, base["step"], tree)
    if params.get("no_extract") and fmt != "alpm":
        raise UsageError("no_extract is pacman's NoExtract: it applies to Arch Linux roots")
    if params.get("installer") == "debootstrap":
        from reprobuild.steps.debootstrap_step import install_debootstrap

        if base or fmt != "deb":
            raise UsageError('installer "debootstrap" makes a Debian root from nothing (no base)')
        install_debootstrap(step, ctx, tree)
    elif fmt == "alpm":
        _install_alpm(step, ctx, tree, params)
    else:
        _install_deb(step, ctx, tree, params, bool(base))
    configure_system(
        tree,
        params,
        apt_sources=step.data.get("apt_sources") or [],
        epoch=ctx.epoch,
        replaceable=_replaceable,
    )
    _apply_recipe(tree, params, ctx)
    configure_access(tree, params, replaceable=_replaceable, mkdirs=_mkdirs)
    finalize(tree, replaceable=_replaceable)
    normalise(tree, epoch=ctx.epoch, mode=params.get("normalise"))
    ctx.secrets.extend(find_secrets(tree))
    out = ctx.workdir / "rootfs.tar"
    with out.open("wb") as f:
        write_canonical_tar(tree, f, epoch=ctx.epoch)
    blob = ctx.store.put_file(out)
    shutil.rmtree(tree, ignore_errors=True)
    return (Output("rootfs.tar", blob.sha256, blob.size, TAR),)


# What mmdebstrap puts in /dev of a tarball (its "setup" phase), so chroots work.
DEV_NODES = (
    ("console", 5, 1),
    ("full", 1, 7),
    ("null", 1, 3),
    ("ptmx", 5, 2),
    ("random", 1, 8),
    ("tty", 5, 0),
    ("urandom", 1, 9),
    ("zero", 1, 5),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stderr", "/proc/self/fd/2"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
)


def _bootstrap_files(tree: Path) -> None:
    """The files a bootstrapper creates besides packages, as mmdebstrap does, but
    never copied from the host: mmdebstrap copies the host's hostname and
    resolv.conf, which would leak the build machine into the image."""
    dev = tree / "dev"
    for d in (dev, dev / "pts", dev / "shm", tree / "etc", tree / "run"):
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o755)
    for name, major, minor in DEV_NODES:
        node = dev / name
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(node, 0o666)
    for name, target in DEV_LINKS:
        (dev / name).symlink_to(target)
    lock = tree / "run" / "lock"
    lock.mkdir(exist_ok=True)
    os.chmod(lock, 0o1777)
    for rel, text in (
        ("etc/fstab", "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n"),
        ("etc/hostname", "localhost\n"),
        ("etc/resolv.conf", ""),
    ):
        (tree / rel).write_text(text)
        os.chmod(tree / rel, 0o644)


def _install_deb(
    step: BuildStep, ctx: StepContext, tree: Path, params: dict[str, Any], has_base: bool
) -> None:
    debs = _fetched_debs(step, ctx)
    arch = _native_arch(debs)
    if not has_base:
        setup_merged_usr(tree, arch)
        init_admindir(tree, arch=arch)
        _bootstrap_files(tree)
    ctx.log(f"unpacking {len(debs)} packages")
    for deb, data in _decompressing_ahead([d for d, _ in _unpack_order(debs)]):
        record_unpacked(tree, unpack_data(deb.path, tree, data=data))
    names = {d.name for d, _ in debs}
    configure = params.get("configure")
    if configure is None:
        configure = "dpkg" in names
    if configure:
        if "dpkg" not in names and not (tree / "usr/bin/dpkg").exists():
            raise UsageError('configure = true needs dpkg in the package set (add "dpkg")')
        ctx.log("configuring (maintainer scripts, dpkg --configure -a)")
        _configure(tree, [d for d, _ in _unpack_order(debs)], ctx.epoch)


# Decompressing is most of an unpack (xz: ~75% on tmpfs); a few packages are
# decompressed ahead on other threads while earlier ones are unpacked, in
# order. Bounded: at most _AHEAD packages of at most _AHEAD_BYTES each in
# memory; a bigger data.tar is streamed when its turn comes.
_AHEAD = 4
_AHEAD_BYTES = 64 << 20


def _decompressing_ahead(
    debs: Sequence[DebPackage],
) -> Iterator[tuple[DebPackage, bytes | None]]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="unxz") as pool:
        pending: deque[tuple[DebPackage, Future[bytes | None]]] = deque()

        def ahead(deb: DebPackage) -> None:
            pending.append((deb, pool.submit(decompressed_data, deb, limit=_AHEAD_BYTES)))

        todo = iter(debs)
        try:
            for deb in itertools.islice(todo, _AHEAD):
                ahead(deb)
            while pending:
                deb, future = pending.popleft()
                try:
                    data = future.result()
                except Exception:  # unpack_data meets it again and names package and member
                    data = None
                for nxt in itertools.islice(todo, 1):
                    ahead(nxt)
                yield deb, data
                del data
        finally:
            for _, future in pending:
                future.cancel()


def _install_alpm(step: BuildStep, ctx: StepContext, tree: Path, params: dict[str, Any]) -> None:
    """What pacstrap does: unpack in dependency order, register, then scriptlets
    (only where the tree has bash; otherwise the build log says unpack only)."""
    wanted = {p["sha256"] for p in step.data.get("packages", [])}
    packages = [
        read_alpm_package(ctx.store.path_of(record.outputs[0].sha256))
        for key, record in sorted(ctx.inputs.items())
        if record.kind == "fetch" and key in wanted
    ]
    no_extract = list(params.get("no_extract") or ())
    results = [unpack_package(p.path, tree, no_extract=no_extract) for p in install_order(packages)]
    for r in results:
        for warning in r.warnings:
            ctx.log(f"{r.name}: warning: {warning}")
    requested = set(params.get("packages") or ())
    reasons = {
        r.name: "explicit" if not requested or r.name in requested else "depend" for r in results
    }
    # What pacman records: "pgp" for a package verified against its signature
    # (pacman then skips the checksum), "sha256" for one locked unsigned.
    signed = {p["name"] for p in step.data.get("packages", []) if p.get("pgpsig")}
    validation = {r.name: "pgp" if r.name in signed else "sha256" for r in results}
    write_local_db(tree, results, reasons=reasons, epoch=ctx.epoch, validation=validation)
    if params.get("configure") is not False:
        ran = run_scriptlets(tree, results, epoch=ctx.epoch)
        ctx.log("alpm: " + (", ".join(ran) if ran else "unpack only (no bash in the tree)"))


def _fetched_debs(step: BuildStep, ctx: StepContext) -> list[tuple[DebPackage, Path]]:
    wanted = {p["sha256"] for p in step.data.get("packages", [])}
    out = []
    for key, record in sorted(ctx.inputs.items()):
        if record.kind != "fetch" or key not in wanted:
            continue
        path = ctx.store.path_of(record.outputs[0].sha256)
        out.append((read_deb(path), path))
    return out


def _native_arch(debs: Sequence[tuple[DebPackage, Path]]) -> str:
    arches = sorted({d.architecture for d, _ in debs if d.architecture != "all"})
    return arches[0] if arches else "amd64"


def _unpack_order(debs: Sequence[tuple[DebPackage, Path]]) -> list[tuple[DebPackage, Path]]:
    """Pre-Depends before their dependents (as dpkg insists), else by name."""
    by_name = {d.name: (d, p) for d, p in debs}
    g = nx.DiGraph()
    g.add_nodes_from(by_name)
    for d, _ in debs:
        for group in parse_relations(d.pre_depends) if d.pre_depends else ():
            for rel in group:
                if rel.name in by_name and rel.name != d.name:
                    g.add_edge(rel.name, d.name)
                    break
    try:
        order = list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        order = sorted(by_name)
    return [by_name[n] for n in order]


def _configure(tree: Path, order: Sequence[DebPackage], epoch: int) -> None:
    """Each ``preinst install`` in unpack order, then ``dpkg --configure -a``, chrooted.

    A preinst runs as dpkg runs it: from ``/var/lib/dpkg/tmp.ci/`` holding the
    package's control members (debconf reads the package name from there),
    with dpkg's ``DPKG_MAINTSCRIPT_*`` variables and ``PERL_DL_NONLAZY=1``.
    """
    policy = _replaceable(tree, "/usr/sbin/policy-rc.d")
    policy.write_bytes(POLICY_RC_D)
    policy.chmod(0o755)
    staging = tree / "var/lib/dpkg/reprobuild-ci"
    _inside(tree, staging / "0", "/var/lib/dpkg/reprobuild-ci")
    dpkg_version = next((d.version for d in order if d.name == "dpkg"), "")
    lines = ["set -e", "cd /"]
    for i, d in enumerate(order):
        if d.control_file("preinst") is None:
            continue
        stage = staging / str(i)
        stage.mkdir(parents=True)
        for member in d.control_files:
            if "/" in member.name:
                continue
            target = stage / member.name
            target.write_bytes(member.data)
            os.chmod(target, member.mode & 0o7777)
        control = "".join(f"{k}: " + v.replace("\n", "\n ") + "\n" for k, v in d.fields)
        (stage / "control").write_text(control)
        os.chmod(stage / "control", 0o644)
        lines += [
            "rm -rf /var/lib/dpkg/tmp.ci",
            f"mv /var/lib/dpkg/reprobuild-ci/{i} /var/lib/dpkg/tmp.ci",
            f"DPKG_MAINTSCRIPT_PACKAGE={d.name} DPKG_MAINTSCRIPT_ARCH={d.architecture} "
            "DPKG_MAINTSCRIPT_NAME=preinst DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 "
            "/var/lib/dpkg/tmp.ci/preinst install",
        ]
    lines += ["rm -rf /var/lib/dpkg/tmp.ci /var/lib/dpkg/reprobuild-ci", "dpkg --configure -a"]
    env = {
        "DEBIAN_FRONTEND": "noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN": "true",
        "DPKG_ROOT": "",
        "DPKG_ADMINDIR": "/var/lib/dpkg",
        "DPKG_RUNNING_VERSION": dpkg_version,
        "PERL_DL_NONLAZY": "1",
    }
    try:
        run(
            SandboxSpec(
                root=tree,
                command=("/bin/sh", "-c", "\n".join(lines) + "\n"),
                epoch=epoch,
                env=env,
                what="the maintainer scripts (dpkg --configure -a)",
            ),
            timeout=CONFIGURE_TIMEOUT,
        )
    finally:
        # As the scripts left the tree: /usr/sbin may now be a link to anywhere.
        remove_inside(tree, "/usr/sbin/policy-rc.d")
        remove_inside(tree, "/var/lib/dpkg/reprobuild-ci")


def _apply_recipe(tree: Path, params: dict[str, Any], ctx: StepContext) -> None:
    def copy_source(ref: Mapping[str, Any], dest: Path) -> None:
        if "step" in ref:
            ctx.store.copy_to(ctx.input(ref["step"]).outputs[0].sha256, dest)
        else:
            shutil.copyfile(ctx.recipe_dir / str(ref["path"]), dest)

    owned = write_files(
        tree,
        params.get("files") or {},
        copy_source=copy_source,
        replaceable=_replaceable,
        mkdirs=_mkdirs,
    )
    _accounts(tree, params.get("groups") or [], params.get("users") or [], ctx.epoch)
    apply_owners(tree, owned)
    hostname = params.get("hostname")
    if hostname:
        dest = _replaceable(tree, "/etc/hostname")
        dest.write_text(hostname + "\n")
        os.chmod(dest, 0o644)
    for pattern in params.get("remove") or []:
        _remove(tree, pattern)


NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
USER_KEYS = {
    *("name", "uid", "gid", "group", "groups", "home", "shell", "comment", "system"),
    *("password_hash", "ssh_authorized_keys"),
}
GROUP_KEYS = {"name", "gid", "system"}


def _accounts(
    tree: Path, groups: Sequence[dict[str, Any]], users: Sequence[dict[str, Any]], epoch: int
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
            _inside(tree, h / "x", home)
            _mkdirs(tree, h.parent)
            if h.is_symlink():
                raise UsageError(f"users: home {home} of '{u['name']}' is a symlink in the tree")
            h.mkdir(exist_ok=True)
            os.chmod(h, 0o755)
            os.chown(h, u["uid"], gid)
    for name, new in lines.items():
        f = tree / "etc" / name
        _inside(tree, f, f"/etc/{name}")
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


def _check_account(entry: dict[str, Any], keys: set[str], what: str) -> None:
    name = entry.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(f"{what}: each entry needs a valid name (got {name!r})")
    unknown = sorted(set(entry) - keys)
    if unknown:
        raise UsageError(f"{what}: unknown attribute(s) {', '.join(unknown)} for '{name}'")
    for key in ("uid", "gid"):
        if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool)):
            raise UsageError(f"{what}: {key} of '{name}' must be an integer")


def _replaceable(tree: Path, path: str) -> Path:
    """*path* in the tree, its parents created and whatever was there removed,
    refusing links that lead out (packages and scripts may have left some)."""
    dest = tree / path.lstrip("/")
    _inside(tree, dest, path)
    _mkdirs(tree, dest.parent)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    return dest


def _mkdirs(tree: Path, directory: Path) -> None:
    """Create missing parents as root-owned 0755, whatever the umask."""
    missing = []
    d = directory
    while not d.exists() and d != tree:
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        d.mkdir()
        os.chmod(d, 0o755)


def _inside(tree: Path, dest: Path, shown: str) -> None:
    if ".." in PurePosixPath(shown).parts:
        raise UsageError(f"files: '{shown}' must not contain '..'")
    parent = dest.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.resolve().is_relative_to(tree.resolve()):
        raise UsageError(f"'{shown}' would be written outside the tree (through a link in it)")


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
