"""GPT disk images holding one root file system (ext4, squashfs or EROFS).

Layout: a GPT written by ``sfdisk`` on a plain file, with ``label-id`` and
the partition ``uuid`` derived from the seed; one partition of the
Discoverable Partitions type "Root Partition (x86-64)"
(``4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709``, named ``root-x86-64``) starting
at 1 MiB and ending on a 1 MiB boundary before the backup GPT. The file
system is built in its own file and copied into the partition (only its data
extents, so the image stays sparse), then optionally converted to qcow2.

What makes each file system identical run after run:

* **ext4** (e2fsprogs 1.47): ``mkfs.ext4 -d`` with a private ``mke2fs.conf``
  (``MKE2FS_CONFIG``: the host's file would otherwise pick features and
  block size), ``-U`` and ``-E hash_seed=`` from the seed,
  ``E2FSPROGS_FAKE_TIME`` for superblock and reserved-inode times. ``-d``
  visits directories sorted (``scandir``/``alphasort`` under ``LC_ALL=C``)
  but copies each source file's ctime (with nanoseconds) and atime, so a
  ``debugfs -w`` pass then sets atime, ctime and crtime of every path to its
  mtime, the tar's clamped one (which mkfs copied, nanoseconds 0); every
  timestamp of a file then says the same as in the ISO and squashfs exports.
* **squashfs**: see :mod:`reprobuild.export.squashfs`.
* **EROFS** (erofs-utils 1.5): ``-U`` from the seed, ``SOURCE_DATE_EPOCH``
  for the build time, ``--preserve-mtime`` so files keep the tar's mtimes
  (``-T`` would set every file's time to the epoch).
* **GPT**: ``sfdisk`` with every identifier fixed; the protective MBR has no
  disk signature. **qcow2**: ``qemu-img convert`` with the format options
  pinned (``compat=1.1``, 64 KiB clusters, no lazy refcounts).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from reprobuild.export.boot import (
    DEFAULT_CMDLINE,
    BootSpec,
    DiskLayout,
    install_disk_boot,
    resolve_boot_spec,
    write_boot_gpt,
)
from reprobuild.export.bootfiles import disk_files, overlay
from reprobuild.export.squashfs import build_squashfs
from reprobuild.export.tar import ExportError
from reprobuild.export.tools import (
    ToolFailed,
    derive_uuid,
    extracted,
    parse_size,
    require_tool,
    run_tool,
    sha256_file,
    staged_output,
    tool_version,
)
from reprobuild.tree import TarEntry

__all__ = [
    "ROOT_X86_64",
    "DiskImage",
    "Filesystem",
    "build_erofs",
    "build_ext4",
    "export_disk",
]

Filesystem = Literal["ext4", "squashfs", "erofs"]
DiskFormat = Literal["raw", "qcow2"]

ROOT_X86_64: Final = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
PARTITION_NAME: Final = "root-x86-64"
SECTOR: Final = 512
ALIGN: Final = 1 << 20
_GPT_BACKUP_SECTORS: Final = 33  # 128 entries of 128 bytes + the backup header

# Pinned so the host's /etc/mke2fs.conf cannot change the image; the values
# are Debian 12's ext4 defaults at a 4 KiB block size, whatever the fs size.
_MKE2FS_CONF: Final = """\
[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384
\treserved_ratio = 5.0
\tlazy_itable_init = true
\tlazy_journal_init = true

[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
"""


@dataclass(frozen=True)
class DiskImage:
    """A written disk image and the identifiers a boot loader or fstab needs."""

    path: Path
    sha256: str
    size: int  # virtual disk size in bytes
    file_size: int  # bytes of the file at *path* (differs from size for qcow2)
    format: str
    filesystem: str
    disk_guid: str
    partition_guid: str
    partition_type: str
    partition_offset: int
    partition_size: int
    filesystem_uuid: str
    filesystem_size: int
    tools: tuple[str, ...]
    boot: str | None = None  # "bios" or "uefi": GRUB in partition 1, root in partition 2


def _debugfs_quote(path: bytes) -> bytes:
    """debugfs (libss) words: double quotes, a quote doubled, nothing else special."""
    return b'"' + path.replace(b'"', b'""') + b'"'


def build_ext4(
    tree: Path,
    members: Iterable[tuple[bytes, TarEntry]],
    image: Path,
    *,
    size: int,
    epoch: int,
    fs_uuid: str,
    hash_seed: str,
    work: Path,
    added: Sequence[bytes] = (),
) -> None:
    """Write an ext4 of *size* bytes holding the extracted *tree* to *image*.

    *members*: the tree's canonical tar members, (path, entry) as
    :func:`reprobuild.export.tools.iter_canonical_tar` yields them. *added*
    names paths the exporter put into the extracted tree besides the tar's
    (:func:`reprobuild.export.bootfiles.overlay`): their times are the epoch.
    """
    if size % 4096:
        raise ExportError(f"an ext4 size must be a multiple of 4 KiB (got {size})")
    root_uid = root_gid = 0
    root_mode = 0o755
    script = bytearray()
    for rel, entry in members:
        if not rel:
            root_uid, root_gid, root_mode = entry.uid, entry.gid, entry.mode
        path = _debugfs_quote(b"/" + rel)
        mtime = b"@%d" % max(0, min(entry.mtime, epoch))
        # mkfs copies mtime (whole seconds, as extracted) but the host's ctime
        # with its nanoseconds, and atime; crtime is E2FSPROGS_FAKE_TIME.
        script += b"sif %s atime %s\nsif %s ctime %s\nsif %s ctime_extra 0\nsif %s crtime %s\n" % (
            path,
            mtime,
            path,
            mtime,
            path,
            path,
            mtime,
        )
    for rel in added:
        path = _debugfs_quote(b"/" + rel)
        for field in (b"mtime", b"atime", b"ctime", b"crtime"):
            script += b"sif %s %s @%d\n" % (path, field, epoch)
        script += b"sif %s ctime_extra 0\n" % path
    script += b'sif "/" mode 0%o\n' % (0o40000 | root_mode)
    conf = work / "mke2fs.conf"
    conf.write_text(_MKE2FS_CONF)
    env = {"MKE2FS_CONFIG": str(conf), "E2FSPROGS_FAKE_TIME": str(epoch), "LC_ALL": "C"}
    with open(image, "wb") as handle:
        handle.truncate(size)
    run_tool(
        [
            "mkfs.ext4",
            "-F",
            "-q",
            "-t",
            "ext4",
            "-T",
            "default",
            "-b",
            "4096",
            "-L",
            "root",
            "-U",
            fs_uuid,
            "-E",
            f"hash_seed={hash_seed},root_owner={root_uid}:{root_gid},nodiscard",
            "-d",
            str(tree),
            str(image),
            f"{size // 1024}k",
        ],
        what=f"writing ext4 for {image.name}",
        env=env,
    )
    script_path = work / "times.debugfs"
    script_path.write_bytes(bytes(script))
    proc = run_tool(
        ["debugfs", "-w", "-f", str(script_path), str(image)],
        what=f"fixing ext4 timestamps in {image.name}",
        env=env,
    )
    errors = [
        line
        for line in proc.stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("debugfs ")
    ]
    if errors:
        raise ToolFailed(
            f"fixing ext4 timestamps in {image.name}: debugfs reported:\n" + "\n".join(errors[:20])
        )


def build_erofs(tree: Path, image: Path, *, epoch: int, fs_uuid: str) -> None:
    """Write an uncompressed EROFS of the extracted *tree* to *image*."""
    run_tool(
        ["mkfs.erofs", "--quiet", f"-U{fs_uuid}", "--preserve-mtime", str(image), str(tree)],
        what=f"writing EROFS for {image.name}",
        env={"SOURCE_DATE_EPOCH": str(epoch)},
    )


def _copy_range(fd_in: int, fd_out: int, todo: int, start: int, dest: int) -> int:
    """copy_file_range, or plain reads and writes across file systems (tmpfs to disk)."""
    try:
        return os.copy_file_range(fd_in, fd_out, todo, start, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
            raise
    data = os.pread(fd_in, min(todo, 4 << 20), start)
    return os.pwrite(fd_out, data, dest) if data else 0


def _copy_into(source: Path, disk: Path, offset: int) -> None:
    """Copy *source*'s data extents into *disk* at *offset*, leaving holes as holes."""
    size = source.stat().st_size
    with open(source, "rb") as src, open(disk, "r+b") as dst:
        fd_in, fd_out = src.fileno(), dst.fileno()
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd_in, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fd_in, start, os.SEEK_HOLE)
            todo = end - start
            while todo:
                copied = _copy_range(fd_in, fd_out, todo, start, offset + start)
                if copied <= 0:
                    raise ExportError(f"short copy of {source.name} into {disk.name}")
                start += copied
                todo -= copied
            pos = end


def _write_gpt(disk: Path, *, size: int, disk_guid: str, part_guid: str) -> tuple[int, int]:
    """Partition *disk* (already *size* bytes); return the partition's (offset, size)."""
    sectors = size // SECTOR
    start = ALIGN // SECTOR
    last_usable = sectors - _GPT_BACKUP_SECTORS - 1
    length = (last_usable + 1 - start) // start * start
    if length <= 0:
        raise ExportError(f"a disk of {size} bytes is too small for a partition")
    script = (
        "label: gpt\n"
        f"label-id: {disk_guid}\n"
        "unit: sectors\n"
        "sector-size: 512\n\n"
        f"start={start}, size={length}, type={ROOT_X86_64}, uuid={part_guid}, "
        f'name="{PARTITION_NAME}"\n'
    )
    run_tool(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "never", "-q", str(disk)],
        what=f"partitioning {disk.name}",
        stdin=script.encode(),
    )
    return start * SECTOR, length * SECTOR


def export_disk(
    canonical_tar: Path,
    dest: Path,
    *,
    epoch: int,
    seed: str,
    size: str | int = "2G",
    filesystem: Filesystem = "ext4",
    partition_table: Literal["gpt"] = "gpt",
    format: DiskFormat = "raw",
    boot: str | None = None,
    kernel: str | None = None,
    initrd: str | None = None,
    cmdline: str | None = None,
    grow_root: bool = False,
) -> DiskImage:
    """Write *canonical_tar* as a partitioned disk image at *dest* (atomically).

    *boot* ``"bios"`` or ``"uefi"`` puts a BIOS boot partition or an EFI
    System Partition first (root becomes partition 2) holding GRUB built
    from the tree (:mod:`reprobuild.export.boot`), which starts *kernel*
    with *initrd* from the root file system (ext4 only). *cmdline* defaults
    to ``console=ttyS0``; ``root=PARTUUID=<root partition> rw`` is put in
    front unless it names a ``root=`` itself. A bootable disk gets an
    ``/etc/fstab`` mounting its root by UUID, read-write (unless the tree
    has a configured one), and with *grow_root* a unit that grows the root
    partition and file system to the disk's size on boot
    (:mod:`reprobuild.export.bootfiles`).
    """
    spec: BootSpec | None = None
    if boot is None:
        if kernel is not None or initrd is not None or cmdline is not None:
            raise ExportError("kernel, initrd and cmdline need boot (bios or uefi)")
    elif boot not in ("bios", "uefi"):
        raise ExportError(f"unknown boot mode {boot!r} for a disk (bios or uefi)")
    elif filesystem != "ext4":
        raise ExportError(
            f"a bootable disk needs filesystem = ext4 (GRUB 2.06 reads neither "
            f"zstd squashfs nor EROFS; got {filesystem!r})"
        )
    if grow_root and boot is None:
        raise ExportError("grow_root needs a bootable disk (boot = bios or uefi)")
    if partition_table != "gpt":
        raise ExportError(f"unknown partition table {partition_table!r} (only gpt)")
    if filesystem not in ("ext4", "squashfs", "erofs"):
        raise ExportError(f"unknown file system {filesystem!r} (ext4, squashfs or erofs)")
    if format not in ("raw", "qcow2"):
        raise ExportError(f"unknown disk format {format!r} (raw or qcow2)")
    if epoch < 0:
        raise ExportError(f"epoch must not be negative (got {epoch})")
    total = parse_size(size)
    if total % ALIGN:
        raise ExportError(f"disk size {size!r} must be a whole number of MiB")
    disk_guid = str(derive_uuid(seed, "gpt-disk")).upper()
    part_guid = str(derive_uuid(seed, "gpt-partition-root")).upper()
    fs_uuid = str(derive_uuid(seed, f"{filesystem}-uuid"))
    tools = [
        "sfdisk",
        {"ext4": "mkfs.ext4", "squashfs": "mksquashfs", "erofs": "mkfs.erofs"}[filesystem],
    ]
    if format == "qcow2":
        tools.append("qemu-img")
    if boot is not None:
        words = (DEFAULT_CMDLINE if cmdline is None else cmdline).split()
        if not any(w.startswith("root=") for w in words):
            words = [f"root=PARTUUID={part_guid.lower()}", "rw", *words]
        spec = resolve_boot_spec(
            canonical_tar, kernel=kernel, initrd=initrd, cmdline=" ".join(words)
        )
        if boot == "uefi":
            tools += ["mkfs.fat", "mcopy", "faketime"]
    for tool in tools:
        require_tool(tool)
    with staged_output(dest) as (work, out), contextlib.ExitStack() as scratch:
        raw = work / "disk.raw" if format == "qcow2" else out
        with open(raw, "wb") as handle:
            handle.truncate(total)
        layout: DiskLayout | None = None
        if boot is None:
            offset, part_size = _write_gpt(
                raw, size=total, disk_guid=disk_guid, part_guid=part_guid
            )
        else:
            layout = write_boot_gpt(
                raw,
                size=total,
                boot=boot,
                disk_guid=disk_guid,
                boot_guid=str(derive_uuid(seed, f"gpt-partition-{boot}-boot")).upper(),
                root_guid=part_guid,
                root_type=ROOT_X86_64,
                root_name=PARTITION_NAME,
            )
            offset, part_size = layout.root_offset, layout.root_size
        ex = scratch.enter_context(extracted(canonical_tar, work))
        tree = ex.root
        added: list[bytes] = []
        if boot is not None:
            files = disk_files(tree, fs_uuid=fs_uuid, grow_root=grow_root)
            added = overlay(tree, files, epoch=epoch)
        fs_image = tree.parent / "fs.img"  # beside the tree: on tmpfs when it is there
        if filesystem == "ext4":
            build_ext4(
                tree,
                ex.members,
                fs_image,
                size=part_size,
                epoch=epoch,
                fs_uuid=fs_uuid,
                hash_seed=str(derive_uuid(seed, "ext4-hash-seed")),
                work=work,
                added=added,
            )
        elif filesystem == "squashfs":
            build_squashfs(tree, fs_image, epoch=epoch)
            fs_uuid = ""  # squashfs has no UUID
        else:
            build_erofs(tree, fs_image, epoch=epoch, fs_uuid=fs_uuid)
        fs_size = fs_image.stat().st_size
        if fs_size > part_size:
            raise ExportError(
                f"the {filesystem} file system needs {fs_size} bytes but the partition has "
                f"{part_size} (disk size {size!r})",
                hint="choose a larger size",
            )
        _copy_into(fs_image, raw, offset)
        fs_image.unlink()
        if boot is not None and spec is not None and layout is not None:
            esp = install_disk_boot(
                tree, work, raw, boot=boot, spec=spec, layout=layout, epoch=epoch, seed=seed
            )
            if esp is not None:
                _copy_into(esp, raw, layout.boot_offset)
                esp.unlink()
        if format == "qcow2":
            run_tool(
                [
                    "qemu-img",
                    "convert",
                    "-q",
                    "-f",
                    "raw",
                    "-O",
                    "qcow2",
                    "-o",
                    "compat=1.1,cluster_size=65536,lazy_refcounts=off,preallocation=off",
                    str(raw),
                    str(out),
                ],
                what=f"converting {dest.name} to qcow2",
            )
    return DiskImage(
        path=dest,
        sha256=sha256_file(dest),
        size=total,
        file_size=dest.stat().st_size,
        format=format,
        filesystem=filesystem,
        disk_guid=disk_guid,
        partition_guid=part_guid,
        partition_type=ROOT_X86_64,
        partition_offset=offset,
        partition_size=part_size,
        filesystem_uuid=fs_uuid,
        filesystem_size=fs_size,
        tools=tuple(tool_version(t) for t in tools),
        boot=boot,
    )
