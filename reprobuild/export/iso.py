"""ISO 9660 images (Rock Ridge + Joliet) of a canonical tree, via xorriso.

Measured on xorriso 1.5.4 (libisofs 1.5.4), what makes two runs identical:

* ``-no_rc`` (no start-up files from ``$HOME`` or ``/etc``) and a fixed
  environment (:func:`reprobuild.export.tools.tool_env`).
* Fixed volume dates: ``-volume_date uuid`` (which also sets the creation and
  modification dates, and is what GRUB's ``search --fs-uuid`` sees),
  ``-iso_nowtime`` for nodes without a disk file, and ``-volume_date
  all_file_dates set_to_mtime`` so atime/ctime of every file equal its mtime
  (the tar's, already clamped); expiry/effective dates stay "not specified".
* Fixed text fields: system, preparer, application and publisher ids (the
  defaults name the xorriso and library versions and the host OS).
* **Insertion order**: ``-map DIR /`` walks directories in ``readdir`` order
  and libisofs numbers nodes in the order they arrive, so the bytes depended
  on the host file system. Each path is therefore added alone with
  ``-map_single`` in the canonical tar's (sorted) order, read from an options
  file with every path hex-escaped.
* **No host inode numbers**: Rock Ridge 1.12 (``new_rr``) records inode
  numbers, which libisofs assigns after sorting nodes by their *host*
  device/inode; with ``-hardlinks on`` it also stores host dev/ino as AAIP
  attributes. Both leak the build host, so the image uses Rock Ridge 1.10
  (``old_rr``, no serial numbers) with ``-hardlinks off``, ``-xattr off``,
  ``-acl off``, ``-disk_dev_ino off``. Hard-linked files still share one data
  extent, but appear as separate files with a link count of 1.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from reprobuild.export.boot import (
    BootSpec,
    IsoBoot,
    finish_iso_boot,
    iso_boot_args,
    resolve_boot_spec,
)
from reprobuild.export.bootfiles import LIVE_INIT, has_init, live_files, overlay
from reprobuild.export.tar import ExportError
from reprobuild.export.tools import (
    extracted,
    iter_canonical_tar,
    run_tool,
    sha256_file,
    staged_output,
    tool_version,
)

__all__ = ["Boot", "IsoImage", "default_cmdline", "export_iso"]

Boot = Literal["bios", "uefi", "hybrid"]

IDENT: Final = "REPROBUILD"
_VOLID_RE: Final = re.compile(r"^[A-Z0-9_]{1,32}$")
_SAFE: Final = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,=:@")


@dataclass(frozen=True)
class IsoImage:
    """A written ISO image."""

    path: Path
    sha256: str
    size: int
    volume_id: str
    volume_uuid: str  # the YYYYMMDDhhmmsscc string GRUB searches for
    tool: str


def _quote(path: bytes) -> str:
    """A double-quoted xorriso word, every byte outside a safe set as ``\\xHH``."""
    return '"' + "".join(chr(b) if b in _SAFE else f"\\x{b:02x}" for b in path) + '"'


def _volume_uuid(epoch: int) -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(epoch)) + "00"


def default_cmdline(volume_id: str, *, live: bool) -> str:
    """A command line that finds the root from CD-ROM or USB disk alike: by
    the volume label (the initramfs waits for /dev/disk/by-label/VOLID), and
    for a tree with an init, through the live wrapper that makes it writable."""
    words = ["console=ttyS0", f"root=LABEL={volume_id}", "rootfstype=iso9660", "ro"]
    if live:
        words.append(f"init={LIVE_INIT}")
    return " ".join(words)


def export_iso(
    canonical_tar: Path,
    dest: Path,
    *,
    epoch: int,
    seed: str,
    volume_id: str,
    boot: Boot | None = None,
    joliet: bool = True,
    kernel: str | None = None,
    initrd: str | None = None,
    cmdline: str | None = None,
) -> IsoImage:
    """Write *canonical_tar* as an ISO 9660 image at *dest* (atomically).

    *volume_id* must be ECMA-119 d-characters (``A-Z 0-9 _``, at most 32).
    *seed* is accepted for a uniform exporter signature; a non-bootable ISO
    holds no random identifier to derive from it (a hybrid one derives its
    GPT and FAT identifiers from it).

    *boot* ``"bios"``, ``"uefi"`` or ``"hybrid"`` (both, from CD or USB
    stick) adds GRUB built from the tree (see :mod:`reprobuild.export.boot`)
    that starts *kernel* with *initrd* and *cmdline* (paths inside the tree;
    defaults ``/boot/vmlinuz`` or ``/vmlinuz``, ``initrd.img`` likewise, and
    :func:`default_cmdline`: the root by volume label, writable through
    ``/usr/lib/reprobuild/live-init`` when the tree has an init).
    """
    spec: BootSpec | None = None
    live = False
    if not _VOLID_RE.match(volume_id):
        raise ExportError(
            f"volume_id {volume_id!r} must be 1-32 characters of A-Z, 0-9 and _ (ECMA-119)"
        )
    if boot is None:
        if kernel is not None or initrd is not None or cmdline is not None:
            raise ExportError("kernel, initrd and cmdline need boot (bios, uefi or hybrid)")
    elif boot not in ("bios", "uefi", "hybrid"):
        raise ExportError(f"unknown boot mode {boot!r} (bios, uefi or hybrid)")
    else:
        if cmdline is None:
            live = has_init([rel for rel, _ in iter_canonical_tar(canonical_tar)])
            cmdline = default_cmdline(volume_id, live=live)
        spec = resolve_boot_spec(canonical_tar, kernel=kernel, initrd=initrd, cmdline=cmdline)
    if not 0 <= epoch < 32503680000:  # xorriso's uuid dates stop at year 2999
        raise ExportError(f"epoch {epoch} is outside the years ISO 9660 can record")
    volume_uuid = _volume_uuid(epoch)
    with staged_output(dest) as (work, out), extracted(canonical_tar, work) as ex:
        tree = ex.root
        added = overlay(tree, live_files(), epoch=epoch) if live else []
        root = os.fsencode(tree)
        options = work / "map.xorriso"
        with open(options, "w", encoding="ascii") as handle:
            special: list[tuple[bytes, int]] = []
            for rel, entry in ex.members:
                if entry.type == b"5" and entry.mode & 0o7000:
                    special.append((b"/" + rel, entry.mode))
                if rel:
                    handle.write(f"-map_single {_quote(root + b'/' + rel)} {_quote(b'/' + rel)}\n")
            for rel in added:
                handle.write(f"-map_single {_quote(root + b'/' + rel)} {_quote(b'/' + rel)}\n")
                handle.write(f"-chown 0 {_quote(b'/' + rel)} -- -chgrp 0 {_quote(b'/' + rel)} --\n")
            # -map_single drops the sticky/setgid bits of directories: set them again.
            for path, mode in special:
                handle.write(f"-chmod 0{mode:04o} {_quote(path)} --\n")
        argv = [
            "xorriso",
            "-no_rc",
            "-report_about",
            "SORRY",
            "-abort_on",
            "FAILURE",
            "-local_charset",
            "UTF-8",
            "-disk_pattern",
            "off",
            "-iso_rr_pattern",
            "off",
            "-backslash_codes",
            "in_double_quotes",
            "-outdev",
            str(out),
            "-volid",
            volume_id,
            "-system_id",
            "LINUX",
            "-preparer_id",
            IDENT,
            "-application_id",
            IDENT,
            "-publisher",
            "",
            "-rockridge",
            "on",
            "-joliet",
            "on" if joliet else "off",
            "-compliance",
            "old_rr:rec_mtime:joliet_long_names",
            "-hardlinks",
            "off",
            "-xattr",
            "off",
            "-acl",
            "off",
            "-disk_dev_ino",
            "off",
            "-md5",
            "off",
            "-volume_date",
            "uuid",
            volume_uuid,
            "-volume_date",
            "all_file_dates",
            "set_to_mtime",
            "-iso_nowtime",
            f"={epoch}",
            "-map_single",
            str(tree),
            "/",
            "-options_from_file",
            str(options),
        ]
        boot_parts: IsoBoot | None = None
        if boot is not None and spec is not None:
            boot_parts = iso_boot_args(
                tree,
                work,
                canonical_tar,
                boot=boot,
                spec=spec,
                volume_uuid=volume_uuid,
                epoch=epoch,
                seed=seed,
            )
            argv += boot_parts.commands
            # With boot images, libisofs lays out file data in host inode
            # order (varies run to run): a distinct sort weight per file, in
            # the tar's order, fixes the layout. The boot images go first.
            weights = work / "weights.xorriso"
            files = [
                b"/" + rel
                for rel, entry in ex.members
                if rel and entry.type in (b"0", b"1", b"7")
            ] + [b"/" + rel for rel in added if (tree / os.fsdecode(rel)).is_file()]
            top = len(files) + len(boot_parts.paths)
            with open(weights, "w", encoding="ascii") as handle:
                for rank, path in enumerate([*(p.encode() for p in boot_parts.paths), *files]):
                    handle.write(f"-find {_quote(path)} -exec sort_weight {top - rank} --\n")
            argv += ["-options_from_file", str(weights)]
        argv += ["-commit", "-end"]
        run_tool(argv, what=f"writing ISO image {dest.name}")
        if boot_parts is not None:
            finish_iso_boot(out, boot_parts)
    return IsoImage(
        path=dest,
        sha256=sha256_file(dest),
        size=dest.stat().st_size,
        volume_id=volume_id,
        volume_uuid=volume_uuid,
        tool=tool_version("xorriso"),
    )
