"""Bootable ISO and disk images: GRUB and kernel from the tree, booted under QEMU."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reprobuild.export.boot import GrubError, embedded_config, resolve_boot_spec
from reprobuild.export.disk import export_disk
from reprobuild.export.iso import export_iso
from reprobuild.export.tar import ExportError
from reprobuild.tree import write_canonical_tar
from tests.export_boot.conftest import EPOCH, MARKER
from tests.export_boot.qemu import boot_and_wait
from tests.export_images.conftest import export_elsewhere

SEED = "boot-test-seed"


def _iso(tar: Path, dest: Path, boot: str) -> Path:
    t = time.monotonic()
    export_iso(tar, dest, epoch=EPOCH, seed=SEED, volume_id="REPROBOOT", boot=boot)  # type: ignore[arg-type]
    print(f"{boot} ISO written in {time.monotonic() - t:.1f} s")
    return dest


@pytest.fixture(scope="module")
def isos(boot_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("isos")
    return {b: _iso(boot_tar, base / f"{b}.iso", b) for b in ("bios", "uefi", "hybrid")}


@pytest.fixture(scope="module")
def disks(boot_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("disks")
    out = {}
    for b in ("bios", "uefi"):
        out[b] = export_disk(
            boot_tar, base / f"{b}.raw", epoch=EPOCH, seed=SEED, size="256M", boot=b
        ).path
    return out


@pytest.mark.parametrize(
    ("boot", "firmware", "media"),
    [
        ("bios", "bios", "cdrom"),
        ("uefi", "uefi", "cdrom"),
        ("hybrid", "bios", "cdrom"),
        ("hybrid", "uefi", "cdrom"),
        ("hybrid", "bios", "disk"),
        ("hybrid", "uefi", "disk"),
    ],
)
def test_iso_boots(
    isos: dict[str, Path], tmp_path: Path, boot: str, firmware: str, media: str
) -> None:
    took = boot_and_wait(
        isos[boot], firmware=firmware, media=media, marker=MARKER, log=tmp_path / "serial.log"
    )
    print(f"{boot} ISO as {media} under {firmware}: marker after {took:.1f} s")


@pytest.mark.parametrize("boot", ["bios", "uefi"])
def test_disk_boots(disks: dict[str, Path], tmp_path: Path, boot: str) -> None:
    took = boot_and_wait(
        disks[boot], firmware=boot, media="disk", marker=MARKER, log=tmp_path / "serial.log"
    )
    print(f"{boot} disk: marker after {took:.1f} s")


@pytest.mark.parametrize("boot", ["bios", "uefi", "hybrid"])
def test_iso_identical_elsewhere(
    isos: dict[str, Path], boot_tar: Path, tmp_path: Path, boot: str
) -> None:
    """Another process, directory, umask, TZ, locale, SOURCE_DATE_EPOCH and clock."""
    other = export_elsewhere(
        tmp_path / "b", "reprobuild.export.iso", "export_iso", boot_tar, "x.iso",
        epoch=EPOCH, seed=SEED, volume_id="REPROBOOT", boot=boot,
    )  # fmt: skip
    assert other.read_bytes() == isos[boot].read_bytes()


@pytest.mark.parametrize("boot", ["bios", "uefi"])
def test_disk_identical_elsewhere(
    disks: dict[str, Path], boot_tar: Path, tmp_path: Path, boot: str
) -> None:
    other = export_disk(
        boot_tar, tmp_path / "again.raw", epoch=EPOCH, seed=SEED, size="256M", boot=boot
    )
    assert other.path.read_bytes() == disks[boot].read_bytes()
    elsewhere = export_elsewhere(
        tmp_path / "b", "reprobuild.export.disk", "export_disk", boot_tar, "x.raw",
        epoch=EPOCH, seed=SEED, size="256M", boot=boot,
    )  # fmt: skip
    assert elsewhere.read_bytes() == disks[boot].read_bytes()


def test_iso_tree_unchanged(isos: dict[str, Path], boot_tar: Path, tmp_path: Path) -> None:
    """The boot images are hidden: the ISO's file list is the tree's."""
    import subprocess

    plain = export_iso(
        boot_tar, tmp_path / "plain.iso", epoch=EPOCH, seed=SEED, volume_id="REPROBOOT"
    )

    def listing(iso: Path) -> str:
        proc = subprocess.run(
            ["xorriso", "-indev", str(iso), "-find", "/", "--"],
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout

    assert listing(isos["hybrid"]) == listing(plain.path)


def test_disk_needs_ext4(boot_tar: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="ext4"):
        export_disk(
            boot_tar, tmp_path / "d.raw", epoch=EPOCH, seed=SEED, filesystem="erofs", boot="bios"
        )
    with pytest.raises(ExportError, match="bios or uefi"):
        export_disk(boot_tar, tmp_path / "d.raw", epoch=EPOCH, seed=SEED, boot="hybrid")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------
# Without QEMU or downloads
# ---------------------------------------------------------------------------


def _tar(tmp_path: Path, build: dict[str, str | None]) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    for path, target in build.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if target is None:
            full.write_bytes(b"kernel")
        else:
            os.symlink(target, full)
    tar = tmp_path / "t.tar"
    with open(tar, "wb") as handle:
        write_canonical_tar(root, handle, epoch=EPOCH)
    return tar


def test_spec_follows_links(tmp_path: Path) -> None:
    tar = _tar(
        tmp_path,
        {
            "boot/vmlinuz-6.1.0-1-amd64": None,
            "boot/initrd.img-6.1.0-1-amd64": None,
            "vmlinuz": "boot/vmlinuz-6.1.0-1-amd64",
            "initrd.img": "/boot/../boot/initrd.img-6.1.0-1-amd64",
            "escape": "../../../../etc/passwd",
        },
    )
    spec = resolve_boot_spec(tar, kernel=None, initrd=None, cmdline=None)
    assert spec.kernel == "/boot/vmlinuz-6.1.0-1-amd64"
    assert spec.initrd == "/boot/initrd.img-6.1.0-1-amd64"
    assert spec.cmdline == ("console=ttyS0",)
    config = embedded_config(spec, search_uuid="2023-11-14-22-13-20-00")
    assert "linux '/boot/vmlinuz-6.1.0-1-amd64' 'console=ttyS0'\n" in config
    assert config.endswith("boot\n")
    with pytest.raises(GrubError, match="not in the tree"):
        resolve_boot_spec(tar, kernel="/escape", initrd=None, cmdline=None)
    with pytest.raises(GrubError, match="cannot be passed"):
        resolve_boot_spec(tar, kernel=None, initrd=None, cmdline="quiet foo='a b'")


def test_no_kernel(tmp_path: Path) -> None:
    tar = _tar(tmp_path, {"etc/motd": None})
    with pytest.raises(GrubError, match="no kernel"):
        resolve_boot_spec(tar, kernel=None, initrd=None, cmdline=None)
    with pytest.raises(GrubError, match="GRUB modules"):
        export_iso(
            tar,
            tmp_path / "x.iso",
            epoch=EPOCH,
            seed=SEED,
            volume_id="X",
            boot="bios",
            kernel="/etc/motd",
        )
    with pytest.raises(ExportError, match="need boot"):
        export_iso(
            tar, tmp_path / "x.iso", epoch=EPOCH, seed=SEED, volume_id="X", kernel="/etc/motd"
        )


# ---------------------------------------------------------------------------
# A tree with an init: the live ISO (default command line, live-init added)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_tar(boot_tar: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reprobuild.tree import read_canonical_tar

    base = tmp_path_factory.mktemp("live")
    tree = base / "tree"
    with open(boot_tar, "rb") as handle:
        read_canonical_tar(handle, tree)
    (tree / "usr" / "sbin").mkdir(parents=True, exist_ok=True)
    (tree / "usr" / "sbin" / "init").write_text("#!/bin/sh\n")
    tar = base / "live.tar"
    with open(tar, "wb") as handle:
        write_canonical_tar(tree, handle, epoch=EPOCH)
    return tar


def test_live_iso_identical_elsewhere(live_tar: Path, tmp_path: Path) -> None:
    """The live wrapper and its new directory carry no build time, owner or order."""
    import subprocess

    from reprobuild.export.iso import default_cmdline

    first = export_iso(
        live_tar, tmp_path / "a.iso", epoch=EPOCH, seed=SEED, volume_id="LIVE", boot="hybrid"
    )
    time.sleep(1.1)  # a second later: a leaked clock would show
    other = export_elsewhere(
        tmp_path / "b", "reprobuild.export.iso", "export_iso", live_tar, "x.iso",
        epoch=EPOCH, seed=SEED, volume_id="LIVE", boot="hybrid",
    )  # fmt: skip
    assert other.read_bytes() == first.path.read_bytes()
    listing = subprocess.run(
        ["xorriso", "-indev", str(first.path), "-lsl", "/usr/lib/reprobuild", "--"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "-rwxr-xr-x" in listing and "live-init" in listing
    assert "init=/usr/lib/reprobuild/live-init" in default_cmdline("LIVE", live=True)
    assert "root=LABEL=LIVE" in default_cmdline("LIVE", live=False)
