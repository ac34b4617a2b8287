#!/usr/bin/env python3
"""Bootable systems: cold build of the VM disk and the live ISO, and QEMU start to ``login:``.

The packages of ``recipes/debian-vm.repro.lock`` are laid out as the real
snapshot (Debian's signed index from the shared mirror, the missing ``.deb``
files fetched with ``apt-get download`` and checked against the lockfile)
and served over HTTP on 127.0.0.1. Then, in this one run:

* build, cold (fresh store): ``debian-vm.repro`` (the rootfs, a 2 GiB BIOS
  raw disk and a UEFI qcow2) and ``debian-live.repro`` (the rootfs again and
  the hybrid ISO); the ISO once more with the rootfs cached (export only);
* reference: ``mmdebstrap --variant=minbase --include=<the same packages>``
  to a tarball from the same mirror (what the rootfs step does, in the tool
  Debian uses), so the ratio says what the images cost on top;
* boot: seconds from QEMU's start to ``login:`` on the serial console for
  the raw disk (BIOS), the qcow2 (UEFI) and the ISO (BIOS CD-ROM, UEFI USB
  disk), under TCG; reference: the same kernel and initrd started directly
  by QEMU (``-kernel``/``-initrd``, root on the raw disk), so the ratio is
  what firmware and GRUB add.

``--quick``: the VM disk build and the raw disk's boot only, no reference
builds. Run as root (the rootfs is configured with its owners).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, SHARED_TS, clean_env, machine, reprobuild, served

from tests.boot.console import Vm, qemu_argv
from tests.support.snapmirror import locked_mirror

LOCK = ROOT / "recipes" / "debian-vm.repro.lock"
TIMEOUT = 1800.0


def build(recipe: str, store: Path, out: Path, mirror: str) -> tuple[float, dict[str, str]]:
    t = time.monotonic()
    proc = reprobuild(
        ROOT,
        "build", "--json", "-q", "--locked", "-j", "2", "--store", str(store), "-o", str(out),
        "--mirror", f"debian={mirror}", str(ROOT / "recipes" / recipe),
    )  # fmt: skip
    took = time.monotonic() - t
    outputs = json.loads(proc.stdout)["outputs"]
    return took, {name: info["path"] for name, info in outputs.items()}


def to_login(argv: list[str], log: Path) -> float:
    with Vm(argv, log) as vm:
        return vm.expect(r"login: ", TIMEOUT)


def mmdebstrap(mirror: str, work: Path) -> float:
    lock = json.loads(LOCK.read_text())
    request = lock["rootfs"][next(iter(lock["rootfs"]))]["request"]
    t = time.monotonic()
    subprocess.run(
        [
            "mmdebstrap", "--mode=root", "--variant=minbase", "--include=" + ",".join(request),
            "--keyring=" + str(ROOT / "snapshots/keyrings/debian-archive-keyring.gpg"),
            "bookworm", str(work / "mm.tar"), f"deb {mirror}{SHARED_TS}/ bookworm main",
        ],
        check=True, capture_output=True, env=clean_env(SOURCE_DATE_EPOCH="1783765000"),
    )  # fmt: skip
    return time.monotonic() - t


def direct_kernel(raw: str, work: Path) -> list[str]:
    """QEMU starting the image's own kernel and initrd without firmware or GRUB."""
    files = work / "kernel"
    files.mkdir()
    lba = 2048 + 2048  # partition 2 after the 1 MiB BIOS boot partition
    subprocess.run(
        ["debugfs", "-R", f"rdump /boot {files}", f"{raw}?offset={lba * 512}"],
        check=True, capture_output=True,
    )  # fmt: skip
    kernel = sorted((files / "boot").glob("vmlinuz-*"))[-1]
    initrd = sorted((files / "boot").glob("initrd.img-*"))[-1]
    cmdline = subprocess.run(
        ["sh", "-c", f"strings -n 8 {raw} | grep -m1 -o 'root=PARTUUID=[0-9a-f-]*'"],
        capture_output=True, text=True,
    ).stdout.strip() or "root=/dev/sda2"  # fmt: skip
    argv = qemu_argv(Path(raw), firmware="bios", media="disk")
    return [*argv, "-kernel", str(kernel), "-initrd", str(initrd), "-append",
            f"{cmdline} rw console=ttyS0"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/boot.py: run as root", file=sys.stderr)
        return 2
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        work = Path(tmp)
        t = time.monotonic()
        locked_mirror(work / "mirror", [LOCK], SHARED_TS)
        print(f"mirror (apt-get download of what the shared mirror lacks): "
              f"{time.monotonic() - t:.0f} s")  # fmt: skip
        with served(work / "mirror" / "archive" / "debian") as url:
            vm_s, vm = build("debian-vm.repro", work / "s1", work / "o1", url)
            print(f"cold build debian-vm (rootfs + raw + qcow2): {vm_s:.0f} s")
            if not args.quick:
                live_s, live = build("debian-live.repro", work / "s2", work / "o2", url)
                again_s, _ = build("debian-live.repro", work / "s2", work / "o3", url)
                shutil.rmtree(work / "s2")
                mm_s = mmdebstrap(url, work)
                print(f"cold build debian-live (rootfs + hybrid ISO): {live_s:.0f} s")
                print(f"debian-live again, rootfs cached: {again_s:.0f} s")
                print(f"reference mmdebstrap minbase + the same packages: {mm_s:.0f} s")
                print(f"ratios to mmdebstrap: VM {vm_s / mm_s:.2f}, live {live_s / mm_s:.2f}")
        boots = {"raw-bios-disk": qemu_argv(Path(vm["raw"]), firmware="bios", media="disk")}
        if not args.quick:
            boots["qcow2-uefi-disk"] = qemu_argv(
                Path(vm["qcow2"]), firmware="uefi", media="disk", fmt="qcow2"
            )
            boots["iso-bios-cdrom"] = qemu_argv(Path(live["iso"]), firmware="bios", media="cdrom")
            boots["iso-uefi-usb"] = qemu_argv(Path(live["iso"]), firmware="uefi", media="usb")
            boots["reference-direct-kernel"] = direct_kernel(vm["raw"], work)
        results = {}
        for name, argv in boots.items():
            results[name] = to_login(argv, work / f"{name}.log")
            print(f"QEMU start to login: {name}: {results[name]:.0f} s")
        ref = results.get("reference-direct-kernel")
        if ref:
            ratios = [f"{n} {s / ref:.2f}" for n, s in results.items() if not n.startswith("ref")]
            print("ratios to the direct kernel boot: " + ", ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
