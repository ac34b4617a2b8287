"""A bootable root tree: a real Debian kernel and GRUB, a busybox initramfs.

The kernel and GRUB packages are fetched with ``apt-get download`` (the
shared mirror holds neither); the libraries the tree's own ``grub-mkimage``
needs come from the shared mirror. The test skips, saying why, when the
packages cannot be had.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from reprobuild.archives.debian.unpack import setup_merged_usr, unpack_data
from reprobuild.export.cpio import export_cpio
from reprobuild.tree import write_canonical_tar

EPOCH = 1_700_000_000
MARKER = "REPROBUILD-BOOT-OK"
REPO = Path(__file__).resolve().parents[2]
MIRROR = REPO.parent / "shared" / "mirrors" / "debian" / "archive" / "debian" / "20260711T101637Z"
DEMO = REPO / "snapshots" / "demo" / "archive" / "debian" / "20260711T101637Z"
FETCHED = (
    "linux-image-amd64",
    "grub-common",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "libdevmapper1.02.1",
)
# what the tree's grub-mkimage links against, from the shared mirror
LIBS = (
    "gcc-12-base",
    "libgcc-s1",
    "libc6",
    "liblzma5",
    "libselinux1",
    "libpcre2-8-0",
    "libudev1",
    "libcap2",
)
INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo {MARKER}
/bin/busybox poweroff -f
"""


def _deb(pool: Path, name: str) -> Path:
    hits = sorted(pool.rglob(f"{name}_*.deb"))
    if not hits:
        pytest.skip(f"{name} is not in {pool}")
    return hits[-1]


def _download(dest: Path) -> list[Path]:
    """apt-get download the kernel (with its versioned package) and GRUB."""
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available to fetch the kernel and GRUB packages")
    env = dict(os.environ, LC_ALL="C")

    def fetch(*names: str) -> None:
        proc = subprocess.run(
            ["apt-get", "download", *names],
            cwd=dest,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot download {' '.join(names)}: {proc.stderr.strip()[-300:]}")

    fetch(*FETCHED)
    meta = sorted(dest.glob("linux-image-amd64_*.deb"))
    info = subprocess.run(
        ["dpkg-deb", "-f", str(meta[0]), "Depends"], capture_output=True, text=True
    )
    image = info.stdout.split(",")[0].split("(")[0].strip()
    if not image.startswith("linux-image-"):
        pytest.skip(f"linux-image-amd64 depends on {info.stdout.strip()!r}, not a kernel image")
    fetch(image)
    return sorted(dest.glob("*.deb"))


@pytest.fixture(scope="session")
def boot_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Canonical tar of a tree with /boot/vmlinuz, /boot/initrd.img and GRUB."""
    if os.geteuid() != 0:
        pytest.skip("unpacking packages with their owners needs root")
    for tool in ("bwrap", "xorriso", "sfdisk", "mkfs.fat", "mcopy", "faketime", "mkfs.ext4"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            pytest.skip(f"{tool} is not installed")
    base = tmp_path_factory.mktemp("boot")
    debs = base / "debs"
    debs.mkdir()
    fetched = _download(debs)
    # the kernel package (400 MB of modules) is unpacked aside; only vmlinuz is kept
    kernel_root = base / "kernel"
    kernel_root.mkdir()
    setup_merged_usr(kernel_root, "amd64")
    for deb in fetched:
        if deb.name.startswith("linux-image-6"):
            unpack_data(deb, kernel_root)
    kernels = sorted((kernel_root / "boot").glob("vmlinuz-*"))
    if not kernels:
        pytest.skip("the kernel package has no /boot/vmlinuz-*")
    # initramfs: genuine busybox-static and an /init that prints the marker
    initramfs = base / "initramfs"
    initramfs.mkdir()
    setup_merged_usr(initramfs, "amd64")
    unpack_data(_deb(DEMO / "pool", "busybox-static"), initramfs)
    (initramfs / "init").write_text(INIT)
    os.chmod(initramfs / "init", 0o755)
    for name in ("proc", "dev", "sys"):
        (initramfs / name).mkdir(exist_ok=True)
    os.mknod(initramfs / "dev" / "console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
    with open(base / "initramfs.tar", "wb") as handle:
        write_canonical_tar(initramfs, handle, epoch=EPOCH)
    export_cpio(base / "initramfs.tar", base / "initrd.img", epoch=EPOCH, compression="gzip")
    # the bootable tree
    root = base / "root"
    root.mkdir()
    setup_merged_usr(root, "amd64")
    for name in LIBS:
        unpack_data(_deb(MIRROR / "pool", name), root, conffiles_in_place=True)
    for deb in fetched:
        if not deb.name.startswith("linux-image-"):
            unpack_data(deb, root, conffiles_in_place=True)
    (root / "boot").mkdir(exist_ok=True)
    shutil.copyfile(kernels[-1], root / "boot" / kernels[-1].name)
    os.symlink(kernels[-1].name, root / "boot" / "vmlinuz")
    shutil.copyfile(base / "initrd.img", root / "boot" / "initrd.img")
    shutil.rmtree(kernel_root)
    tar = base / "root.tar"
    with open(tar, "wb") as handle:
        write_canonical_tar(root, handle, epoch=EPOCH)
    return tar
