"""recipes/lib/archlinux-docker.repro against archlinux-docker's own commands.

Real Arch Linux packages cannot be fetched here, so the repository is made
locally (makepkg's way, repo-add): ``filesystem``, a ``bash`` that is
busybox, ``pacman`` (its pacman.conf and mirrorlist are NoExtract'ed) and
``base``, with man pages, docs and locales for the NoExtract rules. The
reference runs archlinux-docker's scripts/make-rootfs.sh (image "repro") as
written, with these substitutions: root instead of fakechroot/fakeroot;
pacman 6.0 has no --disable-sandbox-filesystem; its cache directory is
outside the root; faketime at the epoch (pacman before 6.1 writes the clock
into %INSTALLDATE%); the chroot steps whose tools the test packages lack
(update-ca-trust, pacman-key, systemd-sysusers) are skipped; zstd is not run.
The uncompressed tarballs must be the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from reprobuild.archives.debian.unpack import unpack_data
from tests.support.cli import reprobuild as rb

from .pkgs import DEBIAN_POOL, Node, make_package, need

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "recipes" / "lib"
UPSTREAM_EXCLUDE = """./.dockerenv
./.dockerinit
./sys
./proc
./dev
./etc/hostname
./etc/machine-id
./etc/resolv.conf
./etc/pacman.d/gnupg/openpgp-revocs.d/*
./etc/pacman.d/gnupg/private-keys-v1.d/*
./etc/pacman.d/gnupg/pubring.gpg~
./etc/pacman.d/gnupg/S.*
./root/*
./tmp/*
./var/cache/pacman/pkg/*
./var/lib/pacman/sync/*
./var/tmp/*
./alpm-hooks
"""
PACMAN_CONF = (
    "[options]\nHoldPkg = pacman glibc\nArchitecture = auto\nSigLevel = Never\n\n"
    "[core]\nInclude = /etc/pacman.d/mirrorlist\n"
)
MIRRORLIST = (
    "Server = https://fastly.mirror.pkgbuild.com/$repo/os/$arch\n"
    "Server = https://geo.mirror.pkgbuild.com/$repo/os/$arch\n"
)


def _busybox(tmp: Path) -> bytes:
    deb = next(iter(sorted((DEBIAN_POOL / "main").glob("b/busybox/busybox-static_*.deb"))), None)
    if deb is None:
        pytest.skip(f"busybox-static is not in the shared mirror {DEBIAN_POOL}")
    root = tmp / "busybox"
    root.mkdir()
    unpack_data(deb, root)
    return (root / "bin" / "busybox").read_bytes()


def _repository(mirror: Path, tmp: Path) -> Path:
    """Packages as makepkg before 6.1 made them (no xdata): this machine's pacman
    (6.0) would not record it, Arch's pacman 6.1+ and reprobuild would."""
    repo = mirror / "repos" / "2021" / "04" / "29" / "core" / "os" / "x86_64"
    repo.mkdir(parents=True)
    d = Node(kind="dir", mode=0o755)
    applets = {f"usr/bin/{a}": Node(kind="symlink", target="busybox")
               for a in ("sh", "ln", "mkdir", "grep", "sed", "rm", "cat")}  # fmt: skip

    def make(name: str, version: str, nodes: dict[str, Node], **kw: Any) -> Path:
        return make_package(repo, name, version, nodes, xdata=False, **kw)

    packages = [
        make(
            "filesystem",
            "2021.01.19-1",
            {
                "bin": Node(kind="symlink", target="usr/bin"),
                "etc": d,
                "usr": d,
                "usr/bin": d,
                "usr/lib": d,
                "var": d,
                "var/lib": d,
                "tmp": Node(kind="dir", mode=0o1777),
                "run": d,
                "root": Node(kind="dir", mode=0o750),
                "etc/shadow": Node(data=b"root::14871::::::\nbin:!*:14871::::::\n", mode=0o600),
                "etc/passwd": Node(data=b"root:x:0:0::/root:/bin/bash\n"),
                "usr/lib/os-release": Node(data=b'NAME="Arch Linux"\nID=arch\n'),
                "usr/share/man/man5/os-release.5": Node(data=b".TH OS-RELEASE\n"),
                "usr/share/doc/filesystem/README": Node(data=b"docs\n"),
                "usr/share/locale/de/LC_MESSAGES/fs.mo": Node(data=b"de"),
                "usr/share/locale/en_GB/LC_MESSAGES/fs.mo": Node(data=b"en"),
                "usr/share/locale/locale.alias": Node(data=b"alias\n"),
            },
        ),
        make(
            "bash",
            "5.1.008-1",
            {
                "usr/bin/busybox": Node(data=_busybox(tmp), mode=0o755),
                **applets,
            },
            pkginfo=[("depend", "filesystem")],
        ),
        make(
            "pacman",
            "6.0.0-1",
            {
                "etc/pacman.conf": Node(data=b"# upstream pacman.conf\n"),
                "etc/pacman.d": d,
                "etc/pacman.d/mirrorlist": Node(data=b"# upstream mirrorlist\n"),
                "var/lib/pacman": d,
                "usr/share/man/man8/pacman.8": Node(data=b".TH PACMAN\n"),
            },
            pkginfo=[
                ("depend", "bash"),
                ("backup", "etc/pacman.conf"),
                ("backup", "etc/pacman.d/mirrorlist"),
            ],
        ),
        make(
            "base",
            "2-2",
            {},
            pkginfo=[
                ("depend", "filesystem"),
                ("depend", "bash"),
                ("depend", "pacman"),
            ],
        ),
    ]
    for stage in sorted(repo.glob("stage-*")):
        shutil.rmtree(stage)
    subprocess.run(["repo-add", "-q", str(repo / "core.db.tar.gz"), *map(str, packages)],
                   check=True, capture_output=True)  # fmt: skip
    return repo.parents[2]  # .../repos/2021/04/29


def _upstream(work: Path, day: Path, epoch: int) -> Path:
    """scripts/make-rootfs.sh base repro, as written (see the module docstring)."""
    build, out = work / "build", work / "output"
    env = {"PATH": os.environ["PATH"], "TZ": "UTC", "SOURCE_DATE_EPOCH": str(epoch)}

    def sh(script: str) -> None:
        subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, check=True,
                       capture_output=True)  # fmt: skip

    (work / "rootfs/etc/pacman.d").mkdir(parents=True)
    (work / "rootfs/etc/locale.conf").write_text("LANG=C.UTF-8\n")
    (work / "rootfs/etc/pacman.d/mirrorlist").write_text(MIRRORLIST)
    (work / "devtools-extra.conf").write_text(PACMAN_CONF)
    shutil.copyfile(LIB / "archlinux-docker/pacman-conf.d-noextract.conf",
                    work / "pacman-conf.d-noextract.conf")  # fmt: skip
    (work / "exclude").write_text(UPSTREAM_EXCLUDE)
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.skip("faketime is not installed (pacman 6.0 writes the clock into %INSTALLDATE%)")
    sh(f"""
BUILDDIR={build}; OUTPUTDIR={out}
mkdir -vp "$BUILDDIR/alpm-hooks/usr/share/libalpm/hooks"
find /usr/share/libalpm/hooks -exec ln -sf /dev/null "$BUILDDIR/alpm-hooks"{{}} \\; 2>/dev/null || :
mkdir -vp "$BUILDDIR/var/lib/pacman/" "$OUTPUTDIR"
install -Dm644 devtools-extra.conf "$BUILDDIR/etc/pacman.conf"
cat pacman-conf.d-noextract.conf >> "$BUILDDIR/etc/pacman.conf"
sed 's/Include = /&rootfs/g' < "$BUILDDIR/etc/pacman.conf" > pacman.conf
sed -i '/#DisableSandbox/{{c\\
# No kernel landlock in containerd\\
DisableSandbox
}}' "$BUILDDIR/etc/pacman.conf"
cp --recursive --preserve=timestamps rootfs/* "$BUILDDIR/"
ln -fs /usr/lib/os-release "$BUILDDIR/etc/os-release"
sed -i "1iServer = {day.as_uri()}/\\$repo/os/\\$arch" rootfs/etc/pacman.d/mirrorlist
{faketime} -f "@$(date -u -d @{epoch} '+%Y-%m-%d %H:%M:%S')" \\
  pacman -Sy -r "$BUILDDIR" --noconfirm --dbpath "$BUILDDIR/var/lib/pacman" \\
    --cachedir "{work}/cache" --config pacman.conf --noscriptlet --logfile /dev/null \\
    --hookdir "$BUILDDIR/alpm-hooks/usr/share/libalpm/hooks/" base
rm -rf "$BUILDDIR"/etc/pacman.d/gnupg/*
find "$BUILDDIR" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {{}} +
sed -i -e 's/^root::/root:!:/' "$BUILDDIR/etc/shadow"
tar --numeric-owner --xattrs --acls --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --sort=name \\
  --pax-option=delete=atime,delete=ctime --exclude-from=exclude -C "$BUILDDIR" -c . \\
  -f "$OUTPUTDIR/base.tar"
""")
    return out / "base.tar"


def _members(path: Path) -> dict[str, tuple[object, ...]]:
    out = {}
    with tarfile.open(path) as t:
        for m in t.getmembers():
            f = t.extractfile(m) if m.isfile() else None
            data = f.read() if f else None
            out[m.name] = (m.type, m.mode, m.uid, m.gid, m.mtime, m.linkname, data)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="pacman -r and the reference need root")
def test_library_is_archlinux_dockers_tarball(tmp_path: Path) -> None:
    for tool in ("pacman", "repo-add", "bsdtar", "bwrap", "tar"):
        need(tool)
    mirror = tmp_path / "mirror"
    day = _repository(mirror, tmp_path)
    work = tmp_path / "recipe"
    shutil.copytree(LIB, work / "lib")
    conf = PACMAN_CONF.replace("\n", "\\n")
    (work / "a.repro").write_text(
        'let snap = snapshot { archive = "archlinux"; date = "2021-04-29T12:00:00Z"; repos = [ "core" ]; };\n'
        "  archlinux = import ./lib/archlinux-docker.repro;\n"
        f'in archlinux {{ snapshot = snap; pacman_conf = "{conf}"; }}\n'
    )
    # The test packages are unsigned (the reference pacman runs with SigLevel = Never).
    args = ["--insecure-allow-unsigned", "--store", str(tmp_path / "store"), "--mirror",
            f"archlinux={(mirror / 'repos').as_uri()}/"]  # fmt: skip
    r = rb(work, "build", "--json", *args, "a.repro")
    assert r.returncode == 0, r.stderr
    ours = work / json.loads(r.stdout)["outputs"]["rootfs"]["path"]
    with tarfile.open(ours) as t:
        epoch = t.getmember("./").mtime
        names = set(t.getnames())
    assert "./usr/share/man/man5/os-release.5" not in names  # NoExtract
    assert "./usr/share/locale/en_GB/LC_MESSAGES/fs.mo" in names  # !*locale*/en*/*
    theirs = _upstream(tmp_path / "upstream", day, epoch)
    a, b = _members(theirs), _members(ours)
    diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    assert not diff, diff
    assert (
        hashlib.sha256(ours.read_bytes()).digest() == hashlib.sha256(theirs.read_bytes()).digest()
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="pacman -r and the reference need root")
def test_verify_identifies_and_rebuilds_archlinux_dockers_tarball(tmp_path: Path) -> None:
    """``reprobuild verify`` on archlinux-docker's own tarball: identified from its
    contents (local database, pacman.conf, epoch), rebuilt with the library,
    identical; one flipped byte of busybox is named with its package."""
    for tool in ("pacman", "repo-add", "bsdtar", "bwrap", "tar"):
        need(tool)
    day = _repository(tmp_path / "mirror", tmp_path)
    epoch = 1619697600  # 2021-04-29T12:00:00Z, a time of the archive's day
    theirs = _upstream(tmp_path / "upstream", day, epoch)
    args = ["--insecure-allow-unsigned", "--store", str(tmp_path / "store"), "--mirror",
            f"archlinux={(tmp_path / 'mirror' / 'repos').as_uri()}/"]  # fmt: skip
    r = rb(tmp_path, "verify", "--json", *args, str(theirs))
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["method"] == "archlinux-docker" and report["verdict"] == "identical"
    assert report["provenance"]["snapshot"] == "2021-04-29T12:00:00Z"
    assert report["provenance"]["group"] is None and report["notes"] == []

    flipped = tmp_path / "flipped.tar"
    shutil.copyfile(theirs, flipped)
    with tarfile.open(theirs) as t:
        member = t.getmember("./usr/bin/busybox")
    with flipped.open("r+b") as f:
        f.seek(member.offset_data + 100)
        byte = f.read(1)[0]
        f.seek(member.offset_data + 100)
        f.write(bytes([byte ^ 0xFF]))
    r = rb(tmp_path, "verify", "--json", *args, str(flipped))
    assert r.returncode == 1, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert [(d["path"], d["package"], d["cause"]) for d in report["differences"]] == [
        ("usr/bin/busybox", "bash", "package")
    ]
    assert "the image's bytes are not the package's, the rebuild's are" in (
        report["differences"][0]["explanation"]
    )
