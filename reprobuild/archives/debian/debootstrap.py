"""``rootfs { installer = "debootstrap"; }``: debootstrap 1.0.128's procedure, step for step.

The default installer builds a root as mmdebstrap does. This one repeats
what ``debootstrap --variant=minbase --merged-usr SUITE TARGET MIRROR`` does
to the file system, in the same order, so that the tree (and everything
derived from it, such as debuerreotype's tarballs) is the same file for
file, mode for mode and mtime for mtime once times are clamped to the epoch.
Every step below is one of debootstrap's (``scripts/debian-common`` and
``functions``); what runs a command runs the tree's own programs in the
sandbox, with ``/tmp`` and ``/run`` the tree's own (debootstrap mounts no
tmpfs), ``LC_ALL=C``, ``TZ=UTC`` and umask 022.

First stage (in-process):

1. the download directories ``var/lib/apt/lists/partial`` and
   ``var/cache/apt/archives/partial``; the signed ``InRelease`` split into
   ``Release`` and ``Release.gpg`` and the decompressed ``Packages`` in
   ``var/lib/apt/lists`` under debootstrap's names (derived from the mirror
   URL); the packages in ``var/cache/apt/archives``;
2. every *required* package's ``data.tar`` extracted in name order the way
   ``tar -k -x`` (GNU tar 1.34, as root) does it: an entry already there is
   kept untouched (directories keep their mode, owner and mtime), a file
   already there is an error, owners are the archive's numbers, and a new
   directory gets its mode and mtime once its contents are extracted;
3. ``merge_usr``: ``/bin``, ``/lib``, ``/lib64``, ``/sbin`` (whichever
   exist) moved into ``/usr`` entry by entry and replaced by symlinks;
4. empty ``status`` and ``available``; ``/etc/fstab``; the device nodes of
   ``setup_devices_simple``; ``/proc`` replaced by a link to ``/proc``, as
   debootstrap does when it runs in a container (debuerreotype's official
   builds run in Docker), which the second stage turns back into a fresh
   directory; ``etc/apt/sources.list``.

Second stage (the tree's dpkg, in the sandbox): dpkg feigned installed;
``ldconfig``; ``base-passwd``, ``base-files``, ``dpkg``, libc, ``perl-base``
and ``mawk`` installed one by one with ``--force-depends`` (with debootstrap's
temporary ``/usr/bin/awk`` and ``/etc/localtime``); every required package
unpacked again, then configured (``--configure --pending``) under a
``policy-rc.d`` and a fake ``start-stop-daemon``; ``available`` written from
the index and every package selected; pre-dependencies of the base packages
installed (``dpkg --predep-package``) and the rest unpacked and configured;
the fakes removed.

Not repeated, on purpose: debootstrap copies the build host's
``/etc/resolv.conf`` and ``/etc/hostname`` into the tree (a leak of the host;
debuerreotype overwrites both); its log ``var/log/bootstrap.log`` holds
download times, so it is left empty here.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reprobuild.archives.debian.debootstrap_resolve import DebootstrapChoice, resolve_deps
from reprobuild.archives.debian.index import BinaryPackage, parse_packages
from reprobuild.archives.debian.unpack import DebPackage, open_data
from reprobuild.errors import ReprobuildError
from reprobuild.sandbox import SandboxSpec, run
from reprobuild.steps.tar_keep_old import KeptFileError, extract_keep_old
from reprobuild.tree import TreeError

__all__ = ["DebootstrapError", "DebootstrapInputs", "install", "lists_name", "split_inline_sig"]

MERGE_DIRS = ("bin", "lib", "lib32", "lib64", "libo32", "libx32", "sbin")
CORE_TIMEOUT = 1800.0
# PATH of debootstrap's in_target.
CHROOT_PATH = "/sbin:/usr/sbin:/bin:/usr/bin"
_LIBC = {"alpha": "libc6.1", "ia64": "libc6.1"}
POLICY_RC_D = "#!/bin/sh\nexit 101\n"
FAKE_SSD = '#!/bin/sh\necho\necho "Warning: Fake start-stop-daemon called, doing nothing"\n'


class DebootstrapError(ReprobuildError):
    """The debootstrap procedure could not be repeated on these inputs."""


@dataclass(frozen=True)
class DebootstrapInputs:
    """What debootstrap had: its package lists, the packages, the index, the mirror."""

    choice: DebootstrapChoice
    debs: Mapping[str, tuple[DebPackage, Path]]  # by package name
    packages_index: bytes  # the decompressed Packages file
    inrelease: bytes
    mirror: str  # as written to sources.list, without a trailing slash
    suite: str
    component: str
    arch: str


def lists_name(mirror: str, path: str) -> str:
    """debootstrap's ``apt_dest``: ``host_path_dists_..._Packages``."""
    rest = mirror.split("://", 1)[1] if "://" in mirror else mirror
    return f"{rest}_{path}".replace("/", "_")


def split_inline_sig(inrelease: bytes) -> tuple[bytes, bytes]:
    """debootstrap's ``split_inline_sig``: (Release, Release.gpg) from an InRelease.

    The signed text keeps its dash-escapes and loses its final newline,
    exactly as the shell loop writes it.
    """
    release: list[bytes] = []
    sig: list[bytes] = []
    state = "pre-begin"
    for line in inrelease.split(b"\n"):
        if state == "pre-begin":
            if line == b"-----BEGIN PGP SIGNED MESSAGE-----":
                state = "begin"
        elif state == "begin":
            if line == b"":
                state = "data"
        elif state == "data":
            if line == b"-----BEGIN PGP SIGNATURE-----":
                sig.append(line + b"\n")
                state = "signature"
            else:
                release.append(line)
        else:
            sig.append(line + b"\n")
            if line == b"-----END PGP SIGNATURE-----":
                break
    return b"\n".join(release), b"".join(sig)


def deb_filename(deb: DebPackage) -> str:
    """``apt_dest deb``: ``NAME_VERSION_ARCH.deb`` with the epoch colon as ``%3a``."""
    return f"{deb.name}_{deb.version}_{deb.architecture}.deb".replace(":", "%3a", 1)


# --------------------------------------------------------------------------
# First stage
# --------------------------------------------------------------------------


def _mkdirs(tree: Path, rel: str) -> None:
    """``mkdir -p`` under umask 022."""
    path = tree
    for part in rel.split("/"):
        path = path / part
        if not path.exists() and not path.is_symlink():
            path.mkdir(0o755)


def _write(tree: Path, rel: str, data: bytes, mode: int = 0o644) -> None:
    p = tree / rel
    p.write_bytes(data)
    os.chmod(p, mode)


def _downloads(tree: Path, inp: DebootstrapInputs) -> None:
    _mkdirs(tree, "var/lib/apt/lists/partial")
    _mkdirs(tree, "var/cache/apt/archives/partial")
    lists = "var/lib/apt/lists/"
    release, signature = split_inline_sig(inp.inrelease)
    dists = f"dists/{inp.suite}"
    _write(tree, lists + lists_name(inp.mirror, f"{dists}/InRelease"), inp.inrelease)
    _write(tree, lists + lists_name(inp.mirror, f"{dists}/Release"), release)
    _write(tree, lists + lists_name(inp.mirror, f"{dists}/Release.gpg"), signature)
    packages = f"{dists}/{inp.component}/binary-{inp.arch}/Packages"
    _write(tree, lists + lists_name(inp.mirror, packages), inp.packages_index)
    for name in inp.choice.all:
        deb, path = inp.debs[name]
        dest = tree / "var/cache/apt/archives" / deb_filename(deb)
        shutil.copyfile(path, dest)
        os.chmod(dest, 0o644)


def _extract_keep_old(tree: Path, deb: DebPackage) -> None:
    """``dpkg-deb --fsys-tarfile DEB | tar -k -xf -`` run as root in *tree*."""
    context = f"debootstrap: extracting {deb.name} {deb.version}"
    try:
        with open(deb.path, "rb") as handle:
            extract_keep_old(tree, open_data(handle, deb.path), context=context)
    except KeptFileError as exc:
        raise DebootstrapError(
            f"{exc.message} (two required packages ship the same path; debootstrap stops too)"
        ) from None


def _can_usrmerge_symlink(entry: str, target: str) -> bool:
    """debootstrap's ``can_usrmerge_symlink`` (entry is ``/dir/name``)."""
    if target.startswith("/"):
        return True
    while True:
        if target.startswith("/"):
            target = target[1:]
        elif target.startswith("./"):
            target = target[2:]
        elif target == "..":
            head = entry.rsplit("/", 2)[0] if entry.count("/") >= 2 else entry
            return head != entry and head != ""
        elif target.startswith("../"):
            head = entry.rsplit("/", 2)[0] if entry.count("/") >= 2 else entry
            if head == entry or head == "":
                return False
            entry, target = entry.rsplit("/", 1)[0], target[3:]
        else:
            return "/../" not in target


def _merge_usr_entry(tree: Path, rel: str) -> None:
    src = tree / rel
    canon = tree / "usr" / rel
    if canon.is_symlink():
        raise DebootstrapError(f"merge_usr: cannot move /{rel} as its destination is a symlink")
    if not canon.exists():
        os.rename(src, canon)
        return
    if not src.is_dir():
        raise DebootstrapError(f"merge_usr: cannot move non-directory /{rel}: /usr/{rel} exists")
    if not canon.is_dir():
        raise DebootstrapError(f"merge_usr: /usr/{rel} is not a directory")
    names = sorted(os.listdir(src), key=os.fsencode)
    # The shell globs "$1/"* then "$1/."*: plain names first, then dot names.
    for name in [n for n in names if not n.startswith(".")] + [
        n for n in names if n.startswith(".")
    ]:
        entry = src / name
        if entry.is_symlink() and not _can_usrmerge_symlink(f"/{rel}/{name}", os.readlink(entry)):
            raise DebootstrapError(
                f"merge_usr: cannot move relative symlink /{rel}/{name} crossing the top level"
            )
        _merge_usr_entry(tree, f"{rel}/{name}")
    os.rmdir(src)


def merge_usr(tree: Path) -> None:
    """debootstrap's ``merge_usr``: move the top-level directories into /usr."""
    for d in MERGE_DIRS:
        p = tree / d
        if p.is_symlink() or not p.exists():
            continue
        _merge_usr_entry(tree, d)
        os.symlink(f"usr/{d}", p)


DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
    ("console", 5, 1),
)


def _setup_devices(tree: Path) -> None:
    """``setup_devices_simple``: ``mknod -m 666`` and the /proc/self/fd links."""
    dev = tree / "dev"
    for name, major, minor in DEVICES:
        if not (dev / name).exists():
            os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(dev / name, 0o666)
    _mkdirs(tree, "dev/pts")
    _mkdirs(tree, "dev/shm")
    if not (dev / "ptmx").exists():
        os.mknod(dev / "ptmx", 0o666 | stat.S_IFCHR, os.makedev(5, 2))
        os.chmod(dev / "ptmx", 0o666)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        link = dev / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


def first_stage(tree: Path, inp: DebootstrapInputs) -> None:
    _downloads(tree, inp)
    for name in inp.choice.required:
        _extract_keep_old(tree, inp.debs[name][0])
    merge_usr(tree)
    _mkdirs(tree, "var/lib/dpkg")
    _write(tree, "var/lib/dpkg/status", b"")
    _write(tree, "var/lib/dpkg/available", b"")
    _mkdirs(tree, "etc")
    if not (tree / "etc/fstab").exists():
        _write(tree, "etc/fstab", b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
        os.chown(tree / "etc/fstab", 0, 0)
    _setup_devices(tree)
    # setup_proc_symlink, as in a container.
    proc = tree / "proc"
    if proc.is_dir() and not proc.is_symlink():
        shutil.rmtree(proc)
    elif proc.is_symlink() or proc.exists():
        proc.unlink()
    proc.symlink_to("/proc")
    # util-linux's mount, run by debootstrap at this point, leaves an empty
    # /run/mount (debuerreotype-fixup removes it again).
    _mkdirs(tree, "run/mount")
    _mkdirs(tree, "etc/apt")
    _write(tree, "etc/apt/sources.list", f"deb {inp.mirror} {inp.suite} {inp.component}\n".encode())


# --------------------------------------------------------------------------
# Second stage
# --------------------------------------------------------------------------


def _stanzas(index: bytes, names: set[str]) -> bytes:
    """pkgdetails ``STANZAS``: the index's stanzas of *names*, verbatim, in index order."""
    out: list[bytes] = []
    accum: list[bytes] = []
    inside = False
    for line in index.splitlines(keepends=True):
        accum.append(line)
        if line.startswith(b"Package: ") and line[9:].rstrip(b"\n").decode() in names:
            inside = True
        if line in (b"\n", b""):
            if inside:
                out.extend(accum)
            inside = False
            accum = []
    return b"".join(out)


class _Chroot:
    """``in_target``: a command in the tree, as debootstrap's chroot runs it."""

    def __init__(self, tree: Path, epoch: int, log: Callable[[str], None]) -> None:
        self.tree = tree
        self.epoch = epoch
        self.log = log

    def sh(self, script: str, *, check: bool = True, what: str) -> tuple[int, str]:
        env = {
            "PATH": CHROOT_PATH,
            "LANG": "C",
            "LC_ALL": "C",
            "TZ": "UTC",
            "DEBIAN_FRONTEND": "noninteractive",
            "DEBCONF_NONINTERACTIVE_SEEN": "true",
        }
        spec = SandboxSpec(
            root=self.tree,
            command=("/bin/sh", "-c", "set -e\n" + script),
            epoch=self.epoch,
            env=env,
            tmpfs=(),
        )
        result = run(spec, timeout=CORE_TIMEOUT, check=check)
        self.log(f"debootstrap: {what}: exit {result.returncode}")
        return result.returncode, result.stdout.decode(errors="replace")


def _debs(inp: DebootstrapInputs, names: Sequence[str]) -> str:
    """``debfor``: the package paths in debpaths order (sorted by name)."""
    ordered = sorted(set(names), key=lambda n: n.encode())
    return " ".join(
        "/var/cache/apt/archives/" + deb_filename(inp.debs[n][0]) for n in ordered if n in inp.debs
    )


def second_stage(
    tree: Path, inp: DebootstrapInputs, epoch: int, log: Callable[[str], None]
) -> None:
    chroot = _Chroot(tree, epoch, log)
    required, base = list(inp.choice.required), list(inp.choice.base)
    # x_feign_install dpkg
    _mkdirs(tree, "var/lib/dpkg/info")
    dpkg_version = inp.debs["dpkg"][0].version
    with open(tree / "var/lib/dpkg/status", "a") as f:
        f.write(
            f"Package: dpkg\nVersion: {dpkg_version}\nMaintainer: unknown\n"
            "Status: install ok installed\n"
        )
    (tree / "var/lib/dpkg/info/dpkg.list").touch()
    # setup_proc: the container's /proc link becomes a directory again.
    proc = tree / "proc"
    if proc.is_symlink():
        proc.unlink()
        proc.mkdir(0o755)
    libc = _LIBC.get(inp.arch, "libc6")

    def core(*names: str) -> str:
        return f"yes '' | dpkg --force-depends --install {_debs(inp, names)}\n"

    chroot.sh(
        "ldconfig\n"
        "ln -sf mawk /usr/bin/awk\n"
        + core("base-passwd")
        + core("base-files")
        + core("dpkg")
        + "[ -e /etc/localtime ] || ln -sf /usr/share/zoneinfo/UTC /etc/localtime\n"
        + core(libc)
        + core("perl-base")
        + "rm /usr/bin/awk\n"
        + core("mawk")
        + f"yes '' | dpkg --force-depends --unpack {_debs(inp, required)}\n"
        + f"printf '%s' '{POLICY_RC_D}' > /usr/sbin/policy-rc.d\n"
        "chmod 755 /usr/sbin/policy-rc.d\n"
        "mv /sbin/start-stop-daemon /sbin/start-stop-daemon.REAL\n"
        + "cat > /sbin/start-stop-daemon <<'EOF'\n"
        + FAKE_SSD
        + "EOF\n"
        "chmod 755 /sbin/start-stop-daemon\n"
        "mkdir -p /var/lib/dpkg\n"
        "echo 'apt apt' > /var/lib/dpkg/cmethopt\n"
        "chmod 644 /var/lib/dpkg/cmethopt\n"
        "yes '' | dpkg --configure --pending --force-configure-any --force-depends\n",
        what="core packages, unpack and configure required",
    )
    # setup_available
    (tree / "var/lib/dpkg/available").write_bytes(_stanzas(inp.packages_index, {*required, *base}))
    selections = "".join(f"{n} install\n" for n in [*required, *base])
    chroot.sh(f"printf '%s' '{selections}' | dpkg --set-selections\n", what="selections")
    index = {p.name: p for p in _index_packages(inp)}
    done: list[str] = []
    while True:
        rc, out = chroot.sh("dpkg --predep-package\n", check=False, what="predep-package")
        names = [
            ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Package:")
        ]
        if rc != 0 or not names:
            break
        predep = [n for n in resolve_deps(names[:1], index) if n not in required and n not in done]
        if not predep:
            raise DebootstrapError(f"dpkg --predep-package keeps naming {names[0]}")
        chroot.sh(
            "yes '' | dpkg --force-overwrite --force-confold --skip-same-version --install "
            f"{_debs(inp, predep)}\n",
            what=f"pre-dependency {names[0]}",
        )
        base = [n for n in base if n not in predep]
        done += predep
    tail = ""
    if base:
        tail += (
            "yes '' | dpkg --force-overwrite --force-confold --skip-same-version --unpack "
            f"{_debs(inp, base)}\n"
            "yes '' | dpkg --force-confold --skip-same-version --configure -a\n"
        )
    tail += "mv /sbin/start-stop-daemon.REAL /sbin/start-stop-daemon\nrm -f /usr/sbin/policy-rc.d\n"
    chroot.sh(tail, what="base packages")
    log_file = tree / "var/log/bootstrap.log"
    log_file.write_bytes(b"")
    os.chmod(log_file, 0o644)


def _index_packages(inp: DebootstrapInputs) -> tuple[BinaryPackage, ...]:
    return parse_packages(inp.packages_index, what="Packages")


def install(tree: Path, inp: DebootstrapInputs, epoch: int, log: Callable[[str], None]) -> None:
    """Run both stages into the empty directory *tree*."""
    missing = sorted(n for n in inp.choice.all if n not in inp.debs)
    if missing:
        raise DebootstrapError(
            "the locked package set lacks what debootstrap installs: " + ", ".join(missing),
            hint="run 'reprobuild lock --update' so the lock follows debootstrap's choice",
        )
    extra = sorted(set(inp.debs) - set(inp.choice.all))
    if extra:
        raise DebootstrapError(
            "the locked package set has packages debootstrap would not install: "
            + ", ".join(extra),
            hint="run 'reprobuild lock --update' so the lock follows debootstrap's choice",
        )
    try:
        first_stage(tree, inp)
    except (OSError, TreeError) as exc:
        raise DebootstrapError(f"debootstrap first stage: {exc}") from exc
    second_stage(tree, inp, epoch, log)
