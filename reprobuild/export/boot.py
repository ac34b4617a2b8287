"""Boot loaders for ISO and disk images, built from the tree being exported.

The issue's rule: kernel, initrd *and* boot loader come from the rootfs (the
snapshot), never from the host. So GRUB's images are assembled by the
tree's own ``grub-mkimage`` (grub-common) from the tree's module directories
(``/usr/lib/grub/i386-pc`` from grub-pc-bin, ``/usr/lib/grub/x86_64-efi``
from grub-efi-amd64-bin), run in bubblewrap with the tree's top-level
directories bound read-only over an empty root (the extracted tree is never
written to: its directory times go into the image). Host tools only pack
bytes: xorriso, sfdisk, mkfs.fat and mtools.

Every GRUB image carries an embedded configuration (GRUB's rescue parser,
one command a line) that loads the kernel and initrd directly: no
``grub.cfg`` or module directory has to exist in the image, so an ISO's
directory tree is exactly the tree's, and the boot files are hidden.

What makes the boot parts identical run after run (measured: grub-mkimage
2.06 writes the same bytes for the same inputs, PE timestamp included):

* FAT images (El Torito EFI image, ESP): ``mkfs.fat -i`` with a volume id
  derived from the seed, and ``mkfs.fat``/``mmd``/``mcopy`` run under
  ``faketime`` with the clock *frozen* at the epoch (``-f "YYYY-MM-DD
  hh:mm:ss"``, TZ=UTC), so every FAT date is the epoch.
* ISO: the GPT disk GUID of a hybrid image is set from the seed (xorriso
  derives partition GUIDs from it); the boot catalog is hidden and dated by
  ``-volume_date uuid``.
* Disks: ``boot.img`` and ``core.img`` are written by this module exactly as
  ``grub-bios-setup`` would for a BIOS boot partition (no loop devices).
"""

from __future__ import annotations

import os
import stat
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from reprobuild.export.tar import ExportError
from reprobuild.export.tools import (
    ToolFailed,
    ToolMissing,
    derive_uuid,
    iter_canonical_tar,
    read_inside,
    regular_inside,
    require_tool,
    run_tool,
)
from reprobuild.sandbox import Bind, SandboxError, SandboxSpec, run

__all__ = [
    "BIOS_BOOT",
    "DEFAULT_CMDLINE",
    "ESP",
    "BootSpec",
    "DiskLayout",
    "GrubError",
    "IsoBoot",
    "build_fat",
    "efi_image",
    "embedded_config",
    "finish_iso_boot",
    "grub_image",
    "install_bios_boot",
    "install_disk_boot",
    "iso_boot_args",
    "resolve_boot_spec",
    "write_boot_gpt",
]

Platform = Literal["i386-pc", "i386-pc-eltorito", "x86_64-efi"]

BIOS_BOOT: Final = "21686148-6E6F-744E-6565-6445666968AC"  # GPT "BIOS boot partition"
ESP: Final = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"  # GPT "EFI System Partition"
DEFAULT_CMDLINE: Final = "console=ttyS0"
_KERNELS: Final = ("boot/vmlinuz", "vmlinuz")
_INITRDS: Final = ("boot/initrd.img", "initrd.img")
_MODULE_DIRS: Final = {
    "i386-pc": "i386-pc",
    "i386-pc-eltorito": "i386-pc",
    "x86_64-efi": "x86_64-efi",
}
_PACKAGE: Final = {"i386-pc": "grub-pc-bin", "x86_64-efi": "grub-efi-amd64-bin"}
_COMMON_MODULES: Final = (
    "part_gpt",
    "part_msdos",
    "iso9660",
    "ext2",
    "fat",
    "search",
    "search_fs_uuid",
    "linux",
    "boot",
    "echo",
    "serial",
    "terminal",
)
_PLATFORM_MODULES: Final = {"i386-pc": ("biosdisk",), "x86_64-efi": ("all_video",)}
_SKIP_TOP: Final = frozenset({"proc", "dev", "sys", "tmp", "run"})
_OUT: Final = "/tmp/reprobuild-boot"  # where the scratch directory appears in the sandbox
_GRUB_IMAGE_MAX: Final = 64 << 20  # a GRUB image grub-mkimage may hand back
_TOOL_TIMEOUT: Final = 600.0
# diskboot.img's default block list (start 2, segment 0x820): grub-mkimage
# fills in the length; grub-bios-setup rewrites the start.
_BLOCKLIST_AT: Final = 512 - 12
_KERNEL_SECTOR_AT: Final = 0x5C
_BOOT_DRIVE_AT: Final = 0x64
_DRIVE_CHECK_AT: Final = 0x66
_BPB: Final = (0x03, 0x5A)
_PART_TABLE: Final = (0x1B8, 0x1FE)


class GrubError(ExportError):
    """The tree cannot provide what a bootable image needs."""


@dataclass(frozen=True)
class BootSpec:
    """What the boot loader starts: paths resolved inside the tree (symlinks followed)."""

    kernel: str  # "/boot/vmlinuz-6.1.0-...": absolute inside the tree
    initrd: str | None
    cmdline: tuple[str, ...]  # kernel command line, one word each


# --------------------------------------------------------------------------
# Kernel, initrd and command line
# --------------------------------------------------------------------------


def _tree_index(canonical_tar: Path) -> dict[bytes, tuple[bytes, bytes]]:
    """path -> (tar type, link name) for every member."""
    return {rel: (e.type, e.linkname) for rel, e in iter_canonical_tar(canonical_tar)}


def _resolve(index: dict[bytes, tuple[bytes, bytes]], path: str) -> bytes | None:
    """*path* with symlinks followed inside the tree (as chroot would), or None."""
    todo = [p for p in os.fsencode(path).split(b"/") if p]
    done: list[bytes] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == b".":
            continue
        if part == b"..":
            if done:
                done.pop()
            continue
        rel = b"/".join([*done, part])
        found = index.get(rel)
        if found is None:
            return None
        kind, link = found
        if kind == b"2":
            hops += 1
            if hops > 40:
                return None
            if link.startswith(b"/"):
                done = []
            todo = [p for p in link.split(b"/") if p] + todo
            continue
        if kind == b"1":  # hard link: same file as its target
            rel = link[2:] if link.startswith(b"./") else link
            done = [p for p in rel.strip(b"/").split(b"/") if p]
            continue
        done.append(part)
    return b"/".join(done)


def _grub_word(text: str, what: str) -> str:
    """A single-quoted GRUB word; quotes, backslashes and control characters refused."""
    if (
        not text
        or any(c in text for c in "'\"\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in text)
    ):
        raise GrubError(
            f"{what} {text!r} cannot be passed to GRUB (empty, or quotes, backslashes "
            "or control characters)"
        )
    return "'" + text + "'"


def resolve_boot_spec(
    canonical_tar: Path,
    *,
    kernel: str | None,
    initrd: str | None,
    cmdline: str | None,
    default_cmdline: str = DEFAULT_CMDLINE,
) -> BootSpec:
    """Find and check the kernel and initrd in the tree; split the command line.

    Without *kernel*, ``/boot/vmlinuz`` or ``/vmlinuz`` (the links Debian's
    ``linux-update-symlinks`` makes); likewise ``initrd.img`` for *initrd*,
    which may then be absent. Links are resolved here so the boot loader
    reads a plain file.
    """
    index = _tree_index(canonical_tar)

    def regular(path: str, what: str) -> str | None:
        found = _resolve(index, path)
        if found is None:
            return None
        if index.get(found, (b"", b""))[0] not in (b"0", b"7"):
            raise GrubError(f"the {what} {path} in the tree is not a regular file")
        return "/" + os.fsdecode(found)

    def pick(given: str | None, defaults: Sequence[str], what: str, required: bool) -> str | None:
        if given is not None:
            found = regular(given, what)
            if found is None:
                raise GrubError(f"the {what} {given} is not in the tree")
            return found
        for candidate in defaults:
            found = regular(candidate, what)
            if found is not None:
                return found
        if required:
            raise GrubError(
                f"no {what} given and none of "
                f"{', '.join('/' + d for d in defaults)} is in the tree",
                hint="install a kernel package (e.g. linux-image-amd64) or pass kernel=",
            )
        return None

    kernel_path = pick(kernel, _KERNELS, "kernel", True)
    assert kernel_path is not None
    initrd_path = pick(initrd, _INITRDS, "initrd", False)
    words = tuple((default_cmdline if cmdline is None else cmdline).split())
    for word in words:
        _grub_word(word, "kernel command line word")
    _grub_word(kernel_path, "kernel path")
    if initrd_path is not None:
        _grub_word(initrd_path, "initrd path")
    return BootSpec(kernel=kernel_path, initrd=initrd_path, cmdline=words)


def embedded_config(spec: BootSpec, *, search_uuid: str | None) -> str:
    """GRUB commands run before anything else: find the file system, boot.

    Executed by the rescue parser of GRUB's kernel (no ``normal`` module):
    plain commands only. Without *search_uuid* the root is the one in the
    image's prefix (a partition of the disk GRUB was loaded from).
    """
    lines = [
        "serial --unit=0 --speed=115200",
        "terminal_input --append serial",
        "terminal_output --append serial",
    ]
    if search_uuid is not None:
        lines.append(f"search --no-floppy --fs-uuid --set=root {_grub_word(search_uuid, 'uuid')}")
    lines.append("echo 'reprobuild: loading the kernel'")
    lines.append(
        " ".join(["linux", _grub_word(spec.kernel, "kernel"), *map(_grub_word_cmd, spec.cmdline)])
    )
    if spec.initrd is not None:
        lines.append(f"initrd {_grub_word(spec.initrd, 'initrd')}")
    lines.append("boot")
    return "\n".join(lines) + "\n"


def _grub_word_cmd(word: str) -> str:
    return _grub_word(word, "kernel command line word")


# --------------------------------------------------------------------------
# Running the tree's grub-mkimage
# --------------------------------------------------------------------------


def _tool_spec(tree: Path, out: Path, command: Sequence[str], epoch: int, what: str) -> SandboxSpec:
    """The tree's top level bound read-only over an empty root, *out* writable,
    no capabilities: the same sandbox as every other binary from a package."""
    binds: list[Bind] = []
    links: list[tuple[str, str]] = []
    for name in sorted(os.listdir(tree)):
        if name in _SKIP_TOP:
            continue
        path = tree / name
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            links.append((os.readlink(path), "/" + name))
        elif stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
            binds.append(Bind(path, "/" + name, "ro"))
    return SandboxSpec(
        root=None,
        command=tuple(command),
        epoch=epoch,
        env={"LC_ALL": "C", "LANG": "C", "HOME": "/nonexistent"},
        binds=(*binds, Bind(out, _OUT, "rw")),
        symlinks=tuple(links),
        home="/nonexistent",
        what=what,
        capabilities=(),
    )


def grub_image(
    tree: Path,
    work: Path,
    *,
    platform: Platform,
    config: str,
    prefix: str,
    epoch: int,
    name: str,
) -> Path:
    """Build a GRUB image with the tree's ``grub-mkimage`` and module directory.

    Returns the image's path in *work*. All modules the embedded *config*
    needs are built in, so the image reads nothing from a module directory.
    """
    moddir = _MODULE_DIRS[platform]
    package = _PACKAGE[moddir]
    lib = f"/usr/lib/grub/{moddir}"
    if not regular_inside(tree, f"{lib}/moddep.lst"):
        raise GrubError(
            f"the tree has no GRUB modules for {moddir} (/usr/lib/grub/{moddir})",
            hint=f"install {package} in the root file system",
        )
    if not any(regular_inside(tree, f"/{d}/grub-mkimage") for d in ("usr/bin", "bin")):
        raise GrubError(
            "the tree has no grub-mkimage (the image is assembled by the tree's own GRUB)",
            hint="install grub-common in the root file system",
        )
    modules = [*_COMMON_MODULES, *_PLATFORM_MODULES[moddir]]
    missing = [m for m in modules if not regular_inside(tree, f"{lib}/{m}.mod")]
    if missing:
        raise GrubError(f"GRUB modules missing in /usr/lib/grub/{moddir}: {', '.join(missing)}")
    out = work / "grub-out"
    out.mkdir(exist_ok=True)
    (out / f"{name}.cfg").write_text(config, encoding="utf-8")
    command = [
        "grub-mkimage",
        "--format",
        platform,
        "--directory",
        f"/usr/lib/grub/{moddir}",
        "--prefix",
        prefix,
        "--config",
        f"{_OUT}/{name}.cfg",
        "--output",
        f"{_OUT}/{name}",
        *modules,
    ]
    what = f"the tree's grub-mkimage ({platform})"
    try:
        run(_tool_spec(tree, out, command, epoch, what), timeout=_TOOL_TIMEOUT)
    except SandboxError as exc:
        raise ToolFailed(exc.message, hint=exc.hint) from None
    # What the tool left may be a link or a device: read it as the tree would.
    image = read_inside(out, "/" + name, what=f"{what}'s output", limit=_GRUB_IMAGE_MAX)
    result = work / f"grub-{name}"
    result.write_bytes(image)
    return result


# --------------------------------------------------------------------------
# FAT images (El Torito EFI image, EFI System Partition)
# --------------------------------------------------------------------------


def _need(tool: str, package: str) -> None:
    try:
        require_tool(tool)
    except ToolMissing as exc:
        raise ToolMissing(str(exc), hint=f"apt-get install {package}") from None


def _frozen(argv: Sequence[str], epoch: int) -> list[str]:
    """*argv* under faketime with the clock stopped at *epoch* (UTC)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))
    return ["faketime", "-f", stamp, *argv]


def build_fat(
    image: Path,
    files: Sequence[tuple[str, Path]],
    *,
    size: int,
    epoch: int,
    seed: str,
    label: str,
    fat_bits: int | None = None,
) -> None:
    """A FAT file system of *size* bytes at *image* holding *files* (FAT path, source).

    Directories are created as needed. Every date is the epoch and the
    serial number comes from *seed*: the bytes depend on nothing else.
    """
    for tool, package in (
        ("mkfs.fat", "dosfstools"),
        ("mcopy", "mtools"),
        ("faketime", "faketime"),
    ):
        _need(tool, package)
    if size % 512:
        raise ExportError(f"a FAT image size must be a multiple of 512 (got {size})")
    volume_id = derive_uuid(seed, f"fat-volume-id-{label}").hex[:8]
    with open(image, "wb") as handle:
        handle.truncate(size)
    env = {"MTOOLS_SKIP_CHECK": "1", "MTOOLSRC": "/dev/null"}
    mkfs = ["mkfs.fat", "-i", volume_id, "-n", label, "-S", "512"]
    if fat_bits is not None:
        mkfs += ["-F", str(fat_bits)]
    run_tool(_frozen([*mkfs, str(image)], epoch), what=f"formatting {image.name}", env=env)
    made: set[str] = set()
    for fat_path, _ in files:
        parts = fat_path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                made.add(d)
                run_tool(
                    _frozen(["mmd", "-i", str(image), "::/" + d], epoch),
                    what=f"making {d} in {image.name}",
                    env=env,
                )
    for fat_path, source in files:
        run_tool(
            _frozen(
                ["mcopy", "-i", str(image), "-o", str(source), "::/" + fat_path.strip("/")], epoch
            ),
            what=f"copying {fat_path} into {image.name}",
            env=env,
        )


def efi_image(
    tree: Path, work: Path, *, config: str, prefix: str, epoch: int, seed: str, size: int | None
) -> Path:
    """A FAT image with ``EFI/BOOT/BOOTX64.EFI`` (the tree's GRUB) at *work*/efi.img.

    *size* None: just large enough (an El Torito EFI image); else that size
    as FAT32 (an EFI System Partition).
    """
    loader = grub_image(
        tree,
        work,
        platform="x86_64-efi",
        config=config,
        prefix=prefix,
        epoch=epoch,
        name="bootx64.efi",
    )
    if size is None:
        need = loader.stat().st_size + (256 << 10)
        size = max(1 << 20, -(-need // (512 << 10)) * (512 << 10))
        bits = None
    else:
        bits = 32
    image = work / "efi.img"
    build_fat(
        image,
        [("EFI/BOOT/BOOTX64.EFI", loader)],
        size=size,
        epoch=epoch,
        seed=seed,
        label="EFI",
        fat_bits=bits,
    )
    return image


# --------------------------------------------------------------------------
# ISO
# --------------------------------------------------------------------------


def iso_grub_uuid(volume_uuid: str) -> str:
    """The ISO volume UUID as GRUB's ``search --fs-uuid`` prints it."""
    v = volume_uuid
    return "-".join([v[0:4], v[4:6], v[6:8], v[8:10], v[10:12], v[12:14], v[14:16]])


@dataclass(frozen=True)
class IsoBoot:
    """xorriso commands that add the boot images, and what to patch afterwards."""

    commands: tuple[str, ...]
    paths: tuple[str, ...]
    bios_image: bytes | None  # the El Torito BIOS image, whose boot info table is ours to write
    hybrid: bool


def iso_boot_args(
    tree: Path,
    work: Path,
    canonical_tar: Path,
    *,
    boot: str,
    spec: BootSpec,
    volume_uuid: str,
    epoch: int,
    seed: str,
) -> IsoBoot:
    """xorriso arguments making the ISO bootable by BIOS, UEFI or both ("hybrid").

    The boot images are mapped to hidden top-level names (they must not
    shadow a file of the tree, and do not show in any directory).

    Only boot-image type ``any`` without ``boot_info_table``: measured with
    xorriso 1.5.4, a boot info table (also implied by type ``grub``,
    ``grub2_boot_info`` and ``grub2_mbr``) makes libisofs lay out file data
    in the order of the *host's inode numbers*, which differ run to run.
    :func:`finish_iso_boot` writes the boot info table and GRUB's two
    address patches into the finished image instead, as libisofs would.
    """
    if boot not in ("bios", "uefi", "hybrid"):
        raise ExportError(f"unknown boot mode {boot!r} (bios, uefi or hybrid)")
    top = {rel for rel, _ in iter_canonical_tar(canonical_tar) if rel and b"/" not in rel}
    config = embedded_config(spec, search_uuid=iso_grub_uuid(volume_uuid))
    commands: list[str] = []
    paths: list[str] = []
    bios_image: bytes | None = None

    def hidden(source: Path, name: str) -> str:
        if name.encode() in top:
            raise GrubError(f"the tree has /{name}, which the ISO's boot image needs")
        commands.extend(["-map_single", str(source), "/" + name, "-hide", "on", "/" + name, "--"])
        paths.append("/" + name)
        return "/" + name

    commands += [
        "-boot_image", "any", "cat_path=/reprobuild-boot.cat",
        "-boot_image", "any", "cat_hidden=on",
    ]  # fmt: skip
    if boot in ("bios", "hybrid"):
        eltorito = grub_image(
            tree,
            work,
            platform="i386-pc-eltorito",
            config=config,
            prefix="/boot/grub",
            epoch=epoch,
            name="eltorito.img",
        )
        bios_image = eltorito.read_bytes()
        path = hidden(eltorito, "reprobuild-bios.img")
        commands += [
            "-boot_image", "any", f"bin_path={path}",
            "-boot_image", "any", "platform_id=0x00",
            "-boot_image", "any", "emul_type=no_emulation",
            "-boot_image", "any", "load_size=2048",
            "-boot_image", "any", "boot_info_table=off",
        ]  # fmt: skip
        if boot == "hybrid":
            hybrid = "/usr/lib/grub/i386-pc/boot_hybrid.img"
            if not regular_inside(tree, hybrid):
                raise GrubError("the tree's GRUB has no i386-pc/boot_hybrid.img")
            mbr = work / "boot_hybrid.img"  # xorriso would follow a link out of the tree
            mbr.write_bytes(read_inside(tree, hybrid, what="GRUB's MBR", limit=512))
            commands += [
                "-boot_image", "any", f"system_area={mbr}",
                "-boot_image", "any", "partition_table=on",
                "-boot_image", "any", "partition_cyl_align=off",
            ]  # fmt: skip
        commands += ["-boot_image", "any", "next"]
    if boot in ("uefi", "hybrid"):
        efi = efi_image(
            tree, work, config=config, prefix="/boot/grub", epoch=epoch, seed=seed, size=None
        )
        path = hidden(efi, "reprobuild-efi.img")
        commands += [
            "-boot_image", "any", f"efi_path={path}",
            "-boot_image", "any", "platform_id=0xef",
            "-boot_image", "any", "emul_type=no_emulation",
        ]  # fmt: skip
        if boot == "hybrid":
            commands += ["-boot_image", "any", "efi_boot_part=--efi-boot-image"]
    if boot == "hybrid":
        guid = derive_uuid(seed, "iso-gpt-disk")
        commands += ["-boot_image", "any", f"gpt_disk_guid={guid}"]
    return IsoBoot(
        commands=tuple(commands), paths=tuple(paths), bios_image=bios_image, hybrid=boot == "hybrid"
    )


_ISO_BLOCK: Final = 2048
_BOOT_RECORD: Final = b"\x00CD001\x01EL TORITO SPECIFICATION"


def finish_iso_boot(iso: Path, boot: IsoBoot) -> None:
    """Write the El Torito boot info table (and, for hybrid, GRUB's patches) into *iso*.

    The boot info table (bytes 8-63 of the BIOS image: PVD block 16, the
    image's block, its length, the 32-bit sum of its words from byte 64) is
    what GRUB's ``cdboot.img`` reads to load the rest of itself. For a
    hybrid image, GRUB's MBR (``boot_hybrid.img``) gets the image's address
    in 512-byte sectors plus 4 at 0x1B0 and the image itself that plus 5
    at byte 2548: xorriso's ``grub2_mbr``/``grub2_boot_info``.
    """
    if boot.bios_image is None:
        return
    image = boot.bios_image
    with open(iso, "r+b") as handle:
        handle.seek(17 * _ISO_BLOCK)
        record = handle.read(_ISO_BLOCK)
        if not record.startswith(_BOOT_RECORD):
            raise ToolFailed(f"{iso.name}: xorriso wrote no El Torito boot record")
        (catalog,) = struct.unpack_from("<I", record, 0x47)
        handle.seek(catalog * _ISO_BLOCK)
        entries = handle.read(64)
        if entries[0] != 1 or entries[1] != 0 or entries[32] != 0x88:
            raise ToolFailed(f"{iso.name}: the first El Torito entry is not the BIOS image")
        (lba,) = struct.unpack_from("<I", entries, 32 + 8)
        handle.seek(lba * _ISO_BLOCK)
        if handle.read(len(image)) != image:
            raise ToolFailed(f"{iso.name}: the El Torito BIOS image is not where the catalog says")
        tail = image[64:] + b"\0" * (-len(image[64:]) % 4)
        checksum = sum(struct.unpack(f"<{len(tail) // 4}I", tail)) & 0xFFFFFFFF
        handle.seek(lba * _ISO_BLOCK + 8)
        handle.write(struct.pack("<IIII", 16, lba, len(image), checksum) + bytes(40))
        if boot.hybrid:
            handle.seek(lba * _ISO_BLOCK + 2548)
            handle.write(struct.pack("<Q", lba * 4 + 5))
            handle.seek(0x1B0)
            handle.write(struct.pack("<Q", lba * 4 + 4))


# --------------------------------------------------------------------------
# Disk: BIOS boot partition
# --------------------------------------------------------------------------


def install_bios_boot(
    disk: Path, *, boot_img: bytes, core_img: bytes, core_lba: int, room: int
) -> None:
    """Write GRUB's MBR code and core image as ``grub-bios-setup`` does for GPT.

    *core_img* (diskboot.img + compressed kernel) goes to the BIOS boot
    partition at *core_lba* (at most *room* bytes); ``boot.img`` replaces the
    protective MBR's code but keeps its BPB area and partition table; the
    MBR learns the core's first sector and the core's block list the rest.
    """
    if len(boot_img) != 512:
        raise GrubError(f"i386-pc/boot.img has {len(boot_img)} bytes, not 512")
    if len(core_img) > room:
        raise GrubError(
            f"GRUB's core.img ({len(core_img)} bytes) does not fit the BIOS boot partition"
        )
    start, length, segment = struct.unpack_from("<QHH", core_img, _BLOCKLIST_AT)
    sectors = -(-len(core_img) // 512) - 1
    if (start, segment) != (2, 0x820) or length != sectors:
        raise GrubError(
            "GRUB's core.img has an unexpected block list "
            f"(start {start}, length {length}, segment {segment:#x}; expected 2, {sectors}, 0x820)"
        )
    if any(core_img[_BLOCKLIST_AT - 12 : _BLOCKLIST_AT]):
        raise GrubError("GRUB's core.img has no block-list terminator")
    core = bytearray(core_img)
    struct.pack_into("<Q", core, _BLOCKLIST_AT, core_lba + 1)
    with open(disk, "r+b") as handle:
        mbr = bytearray(handle.read(512))
        code = bytearray(boot_img)
        code[_BPB[0] : _BPB[1]] = mbr[_BPB[0] : _BPB[1]]
        code[_PART_TABLE[0] : _PART_TABLE[1]] = mbr[_PART_TABLE[0] : _PART_TABLE[1]]
        struct.pack_into("<Q", code, _KERNEL_SECTOR_AT, core_lba)
        code[_BOOT_DRIVE_AT] = 0xFF  # use the drive the BIOS booted from (in %dl)
        code[_DRIVE_CHECK_AT : _DRIVE_CHECK_AT + 2] = b"\x90\x90"  # a hard disk: no floppy check
        code[0x1FE:0x200] = b"\x55\xaa"
        handle.seek(0)
        handle.write(code)
        handle.seek(core_lba * 512)
        handle.write(core)


# --------------------------------------------------------------------------
# Disk: partition table and boot loader
# --------------------------------------------------------------------------

_ESP_SIZE: Final = 64 << 20
_BIOS_BOOT_SIZE: Final = 1 << 20


@dataclass(frozen=True)
class DiskLayout:
    """Where the boot partition (number 1) and the root partition (number 2) lie."""

    boot_offset: int
    boot_size: int
    root_offset: int
    root_size: int


def write_boot_gpt(
    disk: Path,
    *,
    size: int,
    boot: str,
    disk_guid: str,
    boot_guid: str,
    root_guid: str,
    root_type: str,
    root_name: str,
) -> DiskLayout:
    """GPT with a BIOS boot partition (``bios``) or an ESP (``uefi``) first, then root.

    The boot partition is number 1 and root number 2, which GRUB's prefix
    ``(,gpt2)`` relies on; every identifier is given (sfdisk on a plain file).
    """
    sector = 512
    start = (1 << 20) // sector
    boot_sectors = (_BIOS_BOOT_SIZE if boot == "bios" else _ESP_SIZE) // sector
    root_start = start + boot_sectors
    last_usable = size // sector - 33 - 1
    root_len = (last_usable + 1 - root_start) // start * start
    if root_len <= 0:
        raise ExportError(f"a disk of {size} bytes is too small for a boot and a root partition")
    boot_type, boot_name = (BIOS_BOOT, "bios-boot") if boot == "bios" else (ESP, "esp")
    script = (
        "label: gpt\n"
        f"label-id: {disk_guid}\n"
        "unit: sectors\n"
        "sector-size: 512\n\n"
        f"start={start}, size={boot_sectors}, type={boot_type}, uuid={boot_guid}, "
        f'name="{boot_name}"\n'
        f"start={root_start}, size={root_len}, type={root_type}, uuid={root_guid}, "
        f'name="{root_name}"\n'
    )
    run_tool(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "never", "-q", str(disk)],
        what=f"partitioning {disk.name}",
        stdin=script.encode(),
    )
    return DiskLayout(start * sector, boot_sectors * sector, root_start * sector, root_len * sector)


def install_disk_boot(
    tree: Path,
    work: Path,
    disk: Path,
    *,
    boot: str,
    spec: BootSpec,
    layout: DiskLayout,
    epoch: int,
    seed: str,
) -> Path | None:
    """Put the tree's GRUB on *disk*: MBR + BIOS boot partition, or build an ESP.

    For ``uefi`` the ESP image is returned, for the caller to copy (sparsely)
    to ``layout.boot_offset``.

    GRUB's root is partition 2 of the disk it was loaded from (prefix
    ``(,gpt2)``): no UUID search, so it works for every file system GRUB
    reads.
    """
    config = embedded_config(spec, search_uuid=None)
    prefix = "(,gpt2)/boot/grub"
    if boot == "bios":
        core = grub_image(
            tree,
            work,
            platform="i386-pc",
            config=config,
            prefix=prefix,
            epoch=epoch,
            name="core.img",
        )
        boot_img = read_inside(
            tree, "/usr/lib/grub/i386-pc/boot.img", what="GRUB's boot.img", limit=512
        )
        install_bios_boot(
            disk,
            boot_img=boot_img,
            core_img=core.read_bytes(),
            core_lba=layout.boot_offset // 512,
            room=layout.boot_size,
        )
        return None
    if boot == "uefi":
        return efi_image(
            tree, work, config=config, prefix=prefix, epoch=epoch, seed=seed, size=layout.boot_size
        )
    raise ExportError(f"unknown boot mode {boot!r} for a disk (bios or uefi)")
