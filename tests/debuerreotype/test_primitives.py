"""Each primitive recipes/lib/debuerreotype.repro is made of, against the real tool.

These run in the default test run (about 2 s in all), except the package
choice against ``debootstrap --print-debs`` (25 s, slow); test_library.py
compares whole tarballs with debuerreotype's own (slow).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.archives.debian.index import decompress_index, parse_packages
from reprobuild.archives.debian.unpack import read_deb
from reprobuild.export.gnutar import excluded, write_canonical_excluding, write_gnu_tar
from reprobuild.normalise import normalise_minimal
from reprobuild.resolve_debootstrap import choose
from reprobuild.steps.debootstrap import _extract_keep_old, merge_usr, split_inline_sig
from reprobuild.tree import write_canonical_tar
from tests.support.crafted import deb_from_members, member
from tests.support.debuerreotype import KEYRING, SHARED, SNAPSHOT_URL, TIMESTAMP
from tests.support.mirror import serve

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = SHARED / "archive" / "debian" / TIMESTAMP
FUNCTIONS = Path("/usr/share/debootstrap/functions")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners and device nodes need root")
needs_tar = pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")
needs_debootstrap = pytest.mark.skipif(
    not FUNCTIONS.exists() or shutil.which("debootstrap") is None,
    reason="debootstrap is not installed (apt-get install debootstrap)",
)
needs_mirror = pytest.mark.skipif(
    not SNAPSHOT.exists(), reason="the shared Debian mirror is not beside the repository"
)


def gnu_tar(root: Path, exclude: list[str]) -> bytes:
    """debuerreotype-tar's command line."""
    argv = ["tar", "--create", "--file", "-", "--format=gnu", "--numeric-owner"]
    argv += ["--transform", "s,^./,,", "--sort", "name", "--directory", str(root)]
    for pattern in exclude:
        argv += ["--exclude", pattern]
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "TZ": "UTC"}
    return subprocess.run([*argv, "."], capture_output=True, check=True, env=env).stdout


def crafted_tree(root: Path) -> None:
    """Everything GNU tar's format distinguishes, and the sed transform's traps."""
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "sub" / "f").write_bytes(b"data\n")
    (root / "keep").mkdir()
    long_dir = root / ("L" * 60) / ("M" * 39)  # "LLL.../MMM.../" is exactly 101 bytes
    long_dir.mkdir(parents=True)
    (long_dir / "file").write_bytes(b"x" * 700)
    exact = root / ("N" * 100)  # a name of exactly 100 bytes needs no LongLink
    exact.write_bytes(b"")
    os.symlink("T" * 150, root / "longlink")
    os.symlink("a/b", root / "single")  # sed's "." matches "a": stored as "b"
    os.symlink("./x", root / "dotslash")
    os.symlink("/usr/bin/x", root / "absolute")
    os.symlink("../up", root / "keep" / "up")
    for name in ("h0", "h1", "h2"):
        p = root / "keep" / name if name != "h0" else root / "h0"
        if name == "h0":
            p.write_bytes(b"linked\n")
        else:
            os.link(root / "h0", p)
    (root / "setuid").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "setuid", 0o4755)
    (root / "skip.log").write_bytes(b"log")
    os.mkfifo(root / "fifo")
    if os.geteuid() == 0:
        os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chown(root / "keep", 3_000_000, 42)  # beyond 7 octal digits: base-256
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(
                os.path.join(dirpath, name), (1_600_000_000, 1_600_000_000), follow_symlinks=False
            )
    os.utime(root, (1_600_000_000, 1_600_000_000))


@needs_tar
@pytest.mark.parametrize(
    "exclude",
    [[], ["./d/**", "*.log", "./h0", "./fifo"], ["./d/sub", "./keep/h1", "./L*/*"]],
    ids=["none", "globs", "leading-dir"],
)
def test_gnu_writer_is_gnu_tar(tmp_path: Path, exclude: list[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    crafted_tree(root)
    canonical = io.BytesIO()
    write_canonical_tar(root, canonical, epoch=None)
    canonical.seek(0)
    ours = io.BytesIO()
    write_gnu_tar(canonical, ours, exclude=exclude)
    assert ours.getvalue() == gnu_tar(root, exclude)


@needs_root
def test_canonical_excluding_is_the_canonical_tar_of_the_pruned_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    crafted_tree(root)
    canonical = io.BytesIO()
    write_canonical_tar(root, canonical, epoch=None)
    canonical.seek(0)
    ours = io.BytesIO()
    write_canonical_excluding(canonical, ours, exclude=["./d", "./h0", "*.log"])
    for gone in ("d", "h0", "skip.log"):
        p = root / gone
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    os.utime(root, (1_600_000_000, 1_600_000_000))
    pruned = io.BytesIO()
    write_canonical_tar(root, pruned, epoch=None)
    assert ours.getvalue() == pruned.getvalue()


def test_exclusion_rules() -> None:
    assert excluded(b"./proc/1/maps", ["./proc/**"])
    assert not excluded(b"./proc", ["./proc/**"])  # the directory itself stays
    assert excluded(b"./var/lib/apt/lists/x_Packages", ["./var/lib/apt/lists/*Packages*"])
    assert excluded(b"./a/b/c.log", ["*.log"])  # unanchored, '*' matches '/'
    assert excluded(b"./run/mount/utab", ["./run/mount"])  # a leading directory is enough
    assert not excluded(b"./run/mountain", ["./run/mount"])
    assert excluded(b"./x[1]", ["./x\\[1]"])


@needs_debootstrap
def test_split_inline_sig_is_debootstraps(tmp_path: Path) -> None:
    inrelease = next((SHARED / "archive").rglob("InRelease"), None) or (
        ROOT / "snapshots" / "demo" / "archive" / "debian" / TIMESTAMP / "dists/bookworm/InRelease"
    )
    script = f'. {FUNCTIONS}; split_inline_sig "$1" "$2" "$3"'
    rel, sig = tmp_path / "Release", tmp_path / "Release.gpg"
    subprocess.run(["sh", "-c", script, "sh", str(inrelease), str(rel), str(sig)], check=True)
    assert split_inline_sig(inrelease.read_bytes()) == (rel.read_bytes(), sig.read_bytes())


def _snapshot_tree(root: Path, epoch: int) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            link = os.readlink(p) if p.is_symlink() else None
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            rel = str(p.relative_to(root))
            out[rel] = (
                stat.S_IFMT(st.st_mode),
                st.st_mode & 0o7777,
                st.st_uid,
                st.st_gid,
                min(int(st.st_mtime), epoch),
                link,
                data,
            )
    return out


def _merge_usr_tree(root: Path) -> None:
    for d in (
        "bin",
        "sbin",
        "lib/x86_64-linux-gnu",
        "lib64",
        "usr/bin",
        "usr/lib/x86_64-linux-gnu",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    for f in (
        "bin/sh",
        "bin/.hidden",
        "sbin/init",
        "lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/x86_64-linux-gnu/libz.so.1",
        "lib64/ld-linux-x86-64.so.2",
        "usr/bin/env",
    ):
        (root / f).write_bytes(f.encode())
    os.symlink("../lib/x86_64-linux-gnu/libc.so.6", root / "sbin" / "rel")
    os.symlink("/usr/bin/env", root / "bin" / "abs")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(
                os.path.join(dirpath, name), (1_500_000_000, 1_500_000_000), follow_symlinks=False
            )


@needs_debootstrap
def test_merge_usr_is_debootstraps(tmp_path: Path) -> None:
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    for t in (theirs, ours):
        _merge_usr_tree(t)
    script = f'. {FUNCTIONS}; TARGET="$1"; CODENAME=bookworm; VARIANT=minbase; merge_usr'
    subprocess.run(
        ["sh", "-c", script, "sh", str(theirs)],
        check=True,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C"},
    )
    merge_usr(ours)
    epoch = int(time.time()) - 60  # what happened now clamps alike
    assert _snapshot_tree(ours, epoch) == _snapshot_tree(theirs, epoch)


@needs_root
@needs_tar
def test_first_stage_extraction_is_tar_keep_old_files(tmp_path: Path) -> None:
    """Two packages sharing directories, one existing directory: mode, owner and
    mtime of every entry as ``dpkg-deb --fsys-tarfile | tar -k -xf -`` leaves them."""
    first = deb_from_members(
        tmp_path,
        "first",
        [
            (member("./", tarfile.DIRTYPE, mode=0o755), None),
            (member("./usr/", tarfile.DIRTYPE, mode=0o755), None),
            (member("./usr/share/", tarfile.DIRTYPE, mode=0o755), None),
            (member("./usr/share/doc/", tarfile.DIRTYPE, mode=0o755), None),
            (member("./usr/share/doc/first/", tarfile.DIRTYPE, mode=0o755), None),
            (member("./usr/share/doc/first/copyright"), b"first\n"),
            (member("./var/", tarfile.DIRTYPE, mode=0o755), None),
            (member("./var/mail/", tarfile.DIRTYPE, mode=0o2775), None),
            (member("./etc/", tarfile.DIRTYPE, mode=0o755), None),
            (member("./etc/abs", tarfile.SYMTYPE, mode=0o777, linkname="/usr/bin/tool"), None),
            (member("./etc/rel", tarfile.SYMTYPE, mode=0o777, linkname="../usr/bin/tool"), None),
            (member("./usr/bin/", tarfile.DIRTYPE, mode=0o755), None),
            (member("./usr/bin/tool", mode=0o4755), b"#!/bin/sh\n"),
            (member("./usr/bin/alias", tarfile.SYMTYPE, mode=0o777, linkname="tool"), None),
            (member("./usr/bin/hard", tarfile.LNKTYPE, linkname="./usr/bin/tool"), None),
        ],
    )
    second = deb_from_members(
        tmp_path,
        "second",
        [
            (member("./", tarfile.DIRTYPE, mode=0o700), None),
            (member("./usr/", tarfile.DIRTYPE, mode=0o700), None),
            (member("./usr/share/", tarfile.DIRTYPE, mode=0o700), None),
            (member("./usr/share/doc/", tarfile.DIRTYPE, mode=0o700), None),
            (member("./usr/share/doc/second/", tarfile.DIRTYPE, mode=0o755), None),
            (member("./usr/share/doc/second/copyright"), b"second\n"),
            (member("./var/", tarfile.DIRTYPE, mode=0o700), None),
            (member("./var/lib/", tarfile.DIRTYPE, mode=0o755), None),
        ],
    )
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    for t in (theirs, ours):
        (t / "var" / "lib").mkdir(parents=True)  # as debootstrap's mkdir -p of its download dirs
        os.utime(t / "var" / "lib", (1_400_000_000, 1_400_000_000))
    for deb in (first, second):
        data = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-k", "-xf", "-"], input=data, cwd=theirs, check=True)
        _extract_keep_old(ours, read_deb(deb))
    epoch = int(time.time()) - 60
    assert _snapshot_tree(ours, epoch) == _snapshot_tree(theirs, epoch)


@needs_debootstrap
@needs_mirror
@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap --print-debs needs root")
@pytest.mark.slow  # debootstrap's shell reads the index: 25 s here, 3 min on a loaded machine
def test_package_choice_is_debootstraps(tmp_path: Path) -> None:
    with serve(SHARED) as server:
        env = {"PATH": os.environ["PATH"], "http_proxy": server.url, "no_proxy": "", "LC_ALL": "C"}
        r = subprocess.run(
            [
                "debootstrap",
                "--print-debs",
                "--variant=minbase",
                "--merged-usr",
                f"--keyring={KEYRING}",
                "--include=busybox-static",
                "bookworm",
                str(tmp_path / "target"),
                SNAPSHOT_URL,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    assert r.returncode == 0, r.stdout + r.stderr
    theirs = sorted(r.stdout.split())  # the list on stdout, progress on stderr
    index = decompress_index(
        "Packages.xz", (SNAPSHOT / "dists/bookworm/main/binary-amd64/Packages.xz").read_bytes()
    )
    ours = choose(
        parse_packages(index),
        variant="minbase",
        include=["busybox-static"],
        codename="bookworm",
        mirror=SNAPSHOT_URL,
    )
    assert sorted(ours.all) == theirs
    assert ours.base == ("busybox-static",)  # apt is Priority: required in bookworm


def test_minimal_normalisation(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for d in ("etc", "var/log/apt", "var/cache/ldconfig", "var/cache/apt", "var/lib/dpkg"):
        (root / d).mkdir(parents=True)
    (root / "etc/shadow").write_text(
        "root:*:20700:0:99999:7:::\nuser:x:19000:0::::\nnone::::::::\n"
    )
    (root / "etc/machine-id").write_text("0123456789abcdef\n")
    (root / "var/log/dpkg.log").write_text("2026-12-07 20:10:00 install\n")
    (root / "var/log/wtmp").write_bytes(b"")
    (root / "var/cache/ldconfig/aux-cache").write_bytes(b"inodes")
    (root / "var/cache/apt/pkgcache.bin").write_bytes(b"mtimes")
    (root / "var/lib/dpkg/status-old").write_text("kept\n")
    epoch = 20500 * 86400 + 5
    normalise_minimal(root, epoch=epoch)
    assert (root / "etc/shadow").read_text() == (
        "root:*:20500:0:99999:7:::\nuser:x:19000:0::::\nnone::::::::\n"
    )
    assert (root / "etc/machine-id").read_bytes() == b""
    assert (root / "var/log/dpkg.log").read_bytes() == b""
    assert not (root / "var/cache/ldconfig/aux-cache").exists()
    assert not (root / "var/cache/apt/pkgcache.bin").exists()
    assert (root / "var/lib/dpkg/status-old").read_text() == "kept\n"
    assert all(p.lstat().st_mtime <= epoch for p in root.rglob("*"))


def test_unset_new_arguments_leave_step_keys_alone(tmp_path: Path) -> None:
    """installer, mirror, normalise, tmpfs, format and exclude are not in the
    parameters of steps that do not set them: existing step keys are unchanged."""
    recipe = tmp_path / "r.repro"
    recipe.write_text(
        'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
        '  root = rootfs { snapshot = snap; variant = "none"; packages = [ "netbase" ]; };\n'
        'in { t = tarball { inherit root; }; r = run { inherit root; script = "true"; }; }\n'
    )
    plan = api.make_plan(recipe)
    new = {"installer", "mirror", "normalise", "tmpfs", "format", "exclude"}
    for step in plan.steps.values():
        assert not new & set(step.param_data()), step.kind
