"""Installing Debian packages into a new root, as mmdebstrap does it.

Merged-/usr links first, every package unpacked in-process
(:mod:`reprobuild.archives.debian.unpack`) and registered as dpkg would
(``install ok unpacked``, :mod:`reprobuild.archives.debian.dpkgdb`), then, when
dpkg is in the set, each ``preinst install`` and ``dpkg --configure -a`` run
chrooted in the sandbox (no network, services forbidden by a policy-rc.d).
"""

from __future__ import annotations

import itertools
import os
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from reprobuild.archives.debian.dpkgdb import init_admindir, record_unpacked
from reprobuild.archives.debian.index import parse_relations
from reprobuild.archives.debian.unpack import (
    DebPackage,
    decompressed_data,
    read_deb,
    setup_merged_usr,
    unpack_data,
)
from reprobuild.errors import UsageError
from reprobuild.sandbox import SandboxSpec, remove_inside, run
from reprobuild.stepparams import RootfsParams
from reprobuild.steps.treepaths import inside_tree, replaceable

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep
    from reprobuild.execute import StepContext

__all__ = ["install_debs"]

POLICY_RC_D = (
    b"#!/bin/sh\n# installed by reprobuild while configuring: no service starts\nexit 101\n"
)
CONFIGURE_TIMEOUT = 1800.0


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


def install_debs(
    step: BuildStep, ctx: StepContext, tree: Path, params: RootfsParams, has_base: bool
) -> None:
    """What mmdebstrap does: merged-/usr links and dpkg's database on a new tree,
    every package unpacked in Pre-Depends order and registered, then (when dpkg
    is in the set) each ``preinst install`` and ``dpkg --configure -a``."""
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
    configure = params.configure
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


def _fetched_debs(step: BuildStep, ctx: StepContext) -> list[tuple[DebPackage, Path]]:
    wanted = {p.sha256 for p in step.pinned_packages}
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
    policy = replaceable(tree, "/usr/sbin/policy-rc.d")
    policy.write_bytes(POLICY_RC_D)
    policy.chmod(0o755)
    staging = tree / "var/lib/dpkg/reprobuild-ci"
    inside_tree(tree, staging / "0", "/var/lib/dpkg/reprobuild-ci")
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
