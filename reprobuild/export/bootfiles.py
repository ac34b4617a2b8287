"""Files a bootable image needs that only its exporter can write.

A disk's ``/etc/fstab`` names its root file system by UUID, and that UUID
comes from the disk step's seed, which the rootfs cannot know. So the disk
exporter writes the fstab (unless the recipe gave one), and, with
``grow_root``, a unit growing the root partition and file system on boot.
A live ISO gets ``/usr/lib/reprobuild/live-init``, run as PID 1 before the
tree's init: it lays a tmpfs over the read-only ISO 9660 root (overlayfs),
so the live system is writable, then hands over to ``/sbin/init``.

The files are added to the extracted tree with every time at the epoch and
the times of the directories they land in kept, so the image stays
byte-identical; :func:`overlay` returns the paths it touched (the ext4
writer fixes their inode times too).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reprobuild.export.tar import ExportError

UNCONFIGURED_FSTAB: Final = b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n"
LIVE_INIT: Final = "/usr/lib/reprobuild/live-init"
GROWROOT: Final = "/usr/lib/reprobuild/growroot"
GROWROOT_UNIT: Final = "reprobuild-growroot.service"


@dataclass(frozen=True)
class Added:
    """A file (or, with *link*, a symlink) to put into the image's tree."""

    path: str  # absolute inside the tree
    data: bytes = b""
    mode: int = 0o644
    link: str | None = None


def disk_files(tree: Path, *, fs_uuid: str, grow_root: bool) -> list[Added]:
    """The fstab of a bootable ext4 disk, and the growroot unit when asked for."""
    added = []
    fstab = tree / "etc/fstab"
    if fstab.is_symlink():
        raise ExportError("the tree's /etc/fstab is a symlink; the disk cannot configure it")
    current = fstab.read_bytes() if fstab.is_file() else None
    if current is None or current == UNCONFIGURED_FSTAB or not current.strip():
        options = "rw,errors=remount-ro" + (",x-systemd.growfs" if grow_root else "")
        text = (
            "# /etc/fstab: static file system information (written by reprobuild for this disk).\n"
            "# <file system> <mount point> <type> <options> <dump> <pass>\n"
            f"UUID={fs_uuid}\t/\text4\t{options}\t0\t1\n"
        )
        added.append(Added("/etc/fstab", text.encode()))
    elif grow_root:
        raise ExportError(
            "grow_root needs the disk to write /etc/fstab, but the recipe gave its own",
            hint="add x-systemd.growfs to the root's options in your fstab, or drop it",
        )
    if grow_root:
        missing = [
            tool
            for tool in ("sfdisk", "partx", "resize2fs", "findmnt")
            if not any((tree / d / tool).exists() for d in ("usr/bin", "usr/sbin"))
        ]
        if missing or not (tree / "usr/lib/systemd/systemd").exists():
            raise ExportError(
                "grow_root needs systemd, sfdisk, partx and resize2fs in the tree"
                + (f" (missing: {', '.join(missing)})" if missing else ""),
                hint='add "fdisk" (sfdisk) to the rootfs packages',
            )
        added += [
            Added(GROWROOT, _GROWROOT_SH.encode(), 0o755),
            Added(f"/etc/systemd/system/{GROWROOT_UNIT}", _GROWROOT_UNIT_TEXT.encode()),
            Added(
                f"/etc/systemd/system/local-fs-pre.target.wants/{GROWROOT_UNIT}",
                link=f"/etc/systemd/system/{GROWROOT_UNIT}",
            ),
        ]
    return added


def live_files() -> list[Added]:
    return [Added(LIVE_INIT, _LIVE_INIT_SH.encode(), 0o755)]


def has_init(index: Sequence[bytes]) -> bool:
    """Whether the tree has an init for the live wrapper to hand over to."""
    names = set(index)
    return any(p in names for p in (b"sbin/init", b"usr/sbin/init", b"usr/lib/systemd/systemd"))


def overlay(tree: Path, files: Sequence[Added], *, epoch: int) -> list[bytes]:
    """Write *files* into the extracted *tree*; return every path created or replaced.

    New directories are 0755 root-owned; every new entry's times are the
    epoch; directories that were there keep their times.
    """
    touched: list[bytes] = []
    top = os.stat(tree)
    for item in files:
        rel = item.path.strip("/")
        if not rel or ".." in rel.split("/"):
            raise ExportError(f"cannot add {item.path!r} to the image")
        parts = rel.split("/")
        directory = tree
        # directories and the times they keep
        kept: list[tuple[Path, int, int]] = [(tree, top.st_atime_ns, top.st_mtime_ns)]
        for i, part in enumerate(parts[:-1]):
            directory = directory / part
            if directory.is_symlink():
                raise ExportError(f"/{'/'.join(parts[: i + 1])} is a symlink in the tree")
            if directory.is_dir():
                st = os.stat(directory)
                kept.append((directory, st.st_atime_ns, st.st_mtime_ns))
                continue
            directory.mkdir()
            os.chmod(directory, 0o755)
            kept.append((directory, epoch * 10**9, epoch * 10**9))
            touched.append(os.fsencode("/".join(parts[: i + 1])))
        dest = tree / rel
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            raise ExportError(f"{item.path} is a directory in the tree")
        if item.link is not None:
            dest.symlink_to(item.link)
            os.utime(dest, (epoch, epoch), follow_symlinks=False)
        else:
            dest.write_bytes(item.data)
            os.chmod(dest, item.mode)
            os.utime(dest, (epoch, epoch))
        touched.append(os.fsencode(rel))
        for d, atime, mtime in reversed(kept):  # deepest first: each utime touches no parent
            os.utime(d, ns=(atime, mtime))
    return touched


_GROWROOT_SH: Final = """\
#!/bin/sh
# Added by reprobuild (disk_image grow_root = true): grow the root partition
# to the end of its disk, as growpart does with sfdisk, then its ext4 online.
set -eu
dev=$(findmnt -n -o SOURCE /)
name=${dev##*/}
part=$(cat "/sys/class/block/$name/partition")
disk=/dev/$(basename "$(readlink -f "/sys/class/block/$name/..")")
# the backup GPT to the disk's (new) end
sfdisk --no-reread --no-tell-kernel --relocate gpt-bak-std "$disk"
# free space after the partitions, in runs of more than 1 MiB
free=$(sfdisk --list-free "$disk" | awk '$1 ~ /^[0-9]+$/ && $3 > 2048 { n++ } END { print n + 0 }')
if [ "$free" -gt 0 ]; then
    echo ", +" | sfdisk --no-reread --no-tell-kernel -N "$part" "$disk"
    partx --update --nr "$part" "$disk"
fi
resize2fs "$dev"
"""
_GROWROOT_UNIT_TEXT: Final = f"""\
# Added by reprobuild (disk_image grow_root = true).
[Unit]
Description=Grow the root partition and file system to fill the disk
DefaultDependencies=no
After=systemd-remount-fs.service
Before=local-fs-pre.target shutdown.target
Conflicts=shutdown.target

[Service]
Type=oneshot
ExecStart={GROWROOT}
RemainAfterExit=yes

[Install]
WantedBy=local-fs-pre.target
"""
# Run by the kernel's initramfs as init (``init=``) on the read-only ISO
# 9660 root: /run is already the initramfs's tmpfs, moved over.
_LIVE_INIT_SH: Final = """\
#!/bin/sh
# Added by reprobuild: a live ISO's root is read-only ISO 9660. Lay a tmpfs
# over it (overlayfs, the upper layer in /run) and start the real init there.
set -e
PATH=/usr/sbin:/usr/bin:/sbin:/bin
live=/run/reprobuild-live
mkdir -p "$live"
mount -t tmpfs -o mode=0755,size=50% reprobuild-live "$live"
mkdir -p "$live/upper" "$live/work"
modprobe overlay 2>/dev/null || true
if mount -t overlay overlay -o "lowerdir=/,upperdir=$live/upper,workdir=$live/work" /mnt; then
    exec switch_root /mnt /sbin/init "$@"
fi
echo "reprobuild live-init: no overlay; starting init on the read-only root" >&2
exec /sbin/init "$@"
"""
