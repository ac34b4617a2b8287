"""Rows 1 and 2 of issue 18: the tree's grub-mkimage and the boot files of a tree.

A root whose ``grub-mkimage`` is hostile (a shell script from "a package")
reports from inside what it may do, or leaves a link to a host file where
its output should be; GRUB's ``*.img`` files in the root are links to a host
file. The real exporters (xorriso, mkfs.ext4, sfdisk, mtools) run on it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from pathlib import Path

import pytest

from reprobuild.errors import ReprobuildError
from reprobuild.export.boot import resolve_boot_spec
from reprobuild.export.disk import export_disk
from reprobuild.export.iso import export_iso
from reprobuild.tree import write_canonical_tar
from tests.security.conftest import busybox_tree

EPOCH = 1_700_000_000
MODULES = ["part_gpt", "part_msdos", "iso9660", "ext2", "fat", "search", "search_fs_uuid", "linux", "boot", "echo", "serial", "terminal", "biosdisk", "all_video"]
CAPS = {"CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27, "CAP_SYS_RAWIO": 17, "CAP_SYS_MODULE": 16,
        "CAP_SYS_PTRACE": 19}  # fmt: skip
HOSTILE = {
    # what it may do, as seen from inside, after 128 bytes the ISO's boot info table may overwrite
    "report": 'printf "%0128d" 0 > "$out"; grep -E "^(Cap|Seccomp)" /proc/self/status >> "$out"',
    # its "image" is a link to a host file, for the exporter to follow
    "link": 'ln -s "$HOST_FILE" "$out"',
}


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            pytest.skip(f"{tool} is not installed")


def boot_tree(base: Path, mode: str, host_file: Path, links: dict[str, str]) -> Path:
    """A canonical tar of a tree with a hostile grub-mkimage; *links*: path -> link target."""
    if shutil.which("bwrap") is None:
        pytest.skip("bwrap is not installed (Debian package bubblewrap)")
    base.mkdir(parents=True, exist_ok=True)
    tree = busybox_tree(base / "tree")
    for platform in ("i386-pc", "x86_64-efi"):
        lib = tree / "usr" / "lib" / "grub" / platform
        lib.mkdir(parents=True)
        (lib / "moddep.lst").write_text("")
        for module in MODULES:
            (lib / f"{module}.mod").write_bytes(b"\x7fELF module")
    lib = tree / "usr" / "lib" / "grub" / "i386-pc"
    (lib / "boot.img").write_bytes(b"\xeb" * 512)
    (lib / "boot_hybrid.img").write_bytes(b"\xeb" * 512)
    (tree / "boot").mkdir()
    (tree / "boot" / "vmlinuz").write_bytes(b"not really a kernel")
    tool = tree / "usr" / "bin" / "grub-mkimage"
    tool.parent.mkdir(parents=True, exist_ok=True)
    script = HOSTILE[mode].replace("$HOST_FILE", str(host_file))
    tool.write_text(
        "#!/bin/sh\nout=\nwhile [ $# -gt 0 ]; do [ \"$1\" = --output ] && out=$2; shift; done\n"
        + script + "\n"
    )
    tool.chmod(0o755)
    for path, target in links.items():
        link = tree / path.lstrip("/")
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    tar = base / "tree.tar"
    with tar.open("wb") as handle:
        write_canonical_tar(tree, handle, epoch=EPOCH)
    return tar


@pytest.fixture
def host_file(tmp_path: Path) -> tuple[Path, bytes]:
    marker = b"HOST-SECRET-" + secrets.token_hex(8).encode()
    path = tmp_path / "host-secret.img"
    path.write_bytes(marker.ljust(512, b"S"))
    return path, marker


def test_the_trees_grub_mkimage_runs_without_capabilities(
    tmp_path: Path, host_file: tuple[Path, bytes]
) -> None:
    _need("xorriso")
    tar = boot_tree(tmp_path, "report", host_file[0], {})
    iso = export_iso(tar, tmp_path / "out.iso", epoch=EPOCH, seed="s", volume_id="T", boot="bios")
    data = iso.path.read_bytes()
    found = dict(re.findall(rb"(Cap\w+|Seccomp):\s+([0-9a-f]+)", data))
    assert found, "the hostile grub-mkimage's report is not in the image"
    for field in (b"CapEff", b"CapPrm", b"CapAmb"):
        value = int(found[field], 16)
        held = [name for name, bit in CAPS.items() if value >> bit & 1]
        assert held == [], f"{field.decode()} {found[field].decode()} holds {held}"
        assert value == 0
    assert found[b"Seccomp"] == b"2"  # a filter is loaded


def test_boot_files_linked_to_a_host_file_never_reach_an_image(
    tmp_path: Path, host_file: tuple[Path, bytes]
) -> None:
    _need("xorriso", "mcopy", "mkfs.fat", "faketime", "mkfs.ext4", "sfdisk")
    secret, marker = host_file
    grub = "/usr/lib/grub/i386-pc"
    cases = [
        # grub-mkimage's output is a link to the host file (ISO: El Torito and EFI via mcopy)
        ("iso", "link", {}),
        # GRUB's hybrid MBR in the tree is a link to the host file
        ("iso", "report", {f"{grub}/boot_hybrid.img": str(secret)}),
        # GRUB's boot.img in the tree is a link to the host file (BIOS disk)
        ("disk", "report", {f"{grub}/boot.img": str(secret)}),
        ("disk", "link", {}),
    ]
    for n, (kind, mode, links) in enumerate(cases):
        work = tmp_path / f"case{n}"
        work.mkdir()
        tar = boot_tree(work, mode, secret, links)
        dest = work / f"out.{kind}"
        try:
            if kind == "iso":
                export_iso(tar, dest, epoch=EPOCH, seed="s", volume_id="T", boot="hybrid")
            else:
                export_disk(tar, dest, epoch=EPOCH, seed="s", size="64M", boot="bios")
        except ReprobuildError as exc:  # a clear refusal is fine; a crash is not
            assert "Traceback" not in exc.message
        for produced in work.rglob("*"):
            if produced.is_file() and not produced.is_symlink() and produced != secret:
                assert marker not in produced.read_bytes(), f"case {n}: host bytes in {produced}"
    # A kernel that is a link to a host file is not in the tree.
    tar = boot_tree(tmp_path / "kernel", "report", secret, {"/boot/vmlinuz": str(secret)})
    with pytest.raises(ReprobuildError, match="kernel"):
        resolve_boot_spec(tar, kernel=None, initrd=None, cmdline=None)


def test_a_boot_file_that_is_a_device_in_the_tree_is_refused(
    tmp_path: Path, host_file: tuple[Path, bytes]
) -> None:
    """``boot.img -> /dev/zero`` with the tree's own /dev/zero: never read (it was
    read until a MemoryError). Not run against the old code: it eats memory."""
    _need("mkfs.ext4", "sfdisk")
    if os.geteuid() != 0:
        pytest.skip("making a device node in the tree needs root")
    tar_dir = tmp_path / "dev"
    tar_dir.mkdir()
    tree_tar = boot_tree(tar_dir, "report", host_file[0], {})
    tree = tar_dir / "tree"
    (tree / "dev").mkdir(exist_ok=True)
    os.mknod(tree / "dev" / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    boot_img = tree / "usr/lib/grub/i386-pc/boot.img"
    boot_img.unlink()
    boot_img.symlink_to("/dev/zero")
    with tree_tar.open("wb") as handle:
        write_canonical_tar(tree, handle, epoch=EPOCH)
    with pytest.raises(ReprobuildError, match="not a regular file"):
        export_disk(tree_tar, tmp_path / "d.raw", epoch=EPOCH, seed="s", size="64M", boot="bios")
