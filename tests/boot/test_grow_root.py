"""disk_image { grow_root = true; }: the root grows to fill a larger disk on boot.

The Debian system of debian-system.repro plus ``fdisk`` (sfdisk), on a 2 GiB
disk image enlarged to 3 GiB with ``qemu-img resize`` before it boots: the
root file system must then be about 3 GiB. Slow (its own rootfs build):
``make test-boot``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.locking import Sources
from tests.boot.conftest import PASSWORD, RECIPES, USER, snapshot_timestamp
from tests.boot.console import Vm, qemu_argv
from tests.support.debmirror import SHARED, MirrorUnavailable
from tests.support.snapmirror import locked_mirror

GROW = """\
let system = import ./system.repro; in
{ raw = disk_image { root = system.root; size = "2G"; boot = "bios"; grow_root = true; }; }
"""


@pytest.mark.slow
def test_root_grows_to_the_disk(vm_mirror: str, tmp_path: Path) -> None:
    work = tmp_path / "recipe"
    work.mkdir()
    system = (RECIPES / "debian-system.repro").read_text()
    assert '"sudo"' in system
    (work / "system.repro").write_text(system.replace('"sudo"', '"sudo"\n      "fdisk"', 1))
    (work / "grow.repro").write_text(GROW)
    shared = (SHARED / "archive" / "debian").as_uri() + "/"
    api.lock(work / "grow.repro", sources=Sources(mirrors={"debian": shared}))
    lock = work / "grow.repro.lock"
    try:
        url = locked_mirror(tmp_path / "mirror", [lock], snapshot_timestamp(lock))
    except MirrorUnavailable as exc:
        pytest.skip(f"fdisk cannot be fetched with apt: {exc}")
    result = api.build(
        work / "grow.repro",
        out_dir=tmp_path / "out",
        store_path=tmp_path / "store",
        sources=Sources(mirrors={"debian": url}),
    )
    shutil.rmtree(tmp_path / "store")
    disk = Path(result.outputs[0].path)
    subprocess.run(["qemu-img", "resize", "-q", "-f", "raw", str(disk), "3G"], check=True)
    with Vm(qemu_argv(disk, firmware="bios", media="disk"), tmp_path / "console.log") as vm:
        vm.expect(r"login: ", 1200)
        vm.send(USER + "\n")
        vm.expect(r"Password: ", 120)
        vm.send(PASSWORD + "\n")
        vm.expect(r"[$#] ", 300)
        vm.send("echo RB-SIZE-$(df -B1 --output=size / | tail -1 | tr -d ' ')\n")
        vm.expect(r"RB-SIZE-[0-9]", 120)
        size = int(re.findall(r"RB-SIZE-([0-9]+)", vm.text())[-1])
    print(f"root file system after growing: {size} bytes")
    assert size > int(2.7 * 2**30), vm.text()[-3000:]
