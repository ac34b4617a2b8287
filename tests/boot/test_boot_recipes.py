"""The committed VM and live recipes, built and booted under QEMU (TCG), logged into.

Marked slow as a whole (about 6 minutes on an idle 2-CPU machine, more than
a quarter of ``make test``'s budget): ``make test-slow`` and ``make test-boot``
run it. It builds the BIOS raw disk of
``debian-vm.repro`` and the live ISO of ``debian-live.repro`` once (one
rootfs step feeds both), checks their digests against what the committed
lockfiles recorded (so they equal every earlier build), checks the tree (no
SSH host key, an empty machine ID, the recipe options in place:
``golden/debian-system.txt``), then boots the disk and the ISO side by side,
logs in on the serial console as the recipe's user, makes ``/x`` as root
with sudo, checks that first boot made the SSH host keys and started
ssh.service, prints ``/etc/os-release`` and powers off. Then the longer rest:
each recipe built twice from nothing, the UEFI qcow2 disk, and the ISO by
BIOS and UEFI from CD-ROM and from a USB disk.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reprobuild import api
from reprobuild.locking import Sources
from tests.boot.conftest import PASSWORD, RECIPES, USER, recorded
from tests.boot.console import Vm, log_in_and_use, qemu_argv
from tests.boot.golden import check_tree

pytestmark = pytest.mark.slow

BOOT_TIMEOUT = 1200.0  # to login:, under TCG on a loaded 2-CPU machine
BOTH = """\
# The BIOS disk of debian-vm.repro and the ISO of debian-live.repro, built together.
let
  vm = import ./debian-vm.repro;
  live = import ./debian-live.repro;
  system = import ./debian-system.repro;
in
{
  raw = vm.raw;
  iso = live.iso;
  root = system.root;
}
"""


def recipe_copy(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ("debian-system.repro", "debian-vm.repro", "debian-live.repro"):
        shutil.copyfile(RECIPES / name, dest / name)
    for name in ("debian-vm.repro.lock", "debian-live.repro.lock"):
        shutil.copyfile(RECIPES / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def built(vm_mirror: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("vm-build")
    work = recipe_copy(base / "recipes")
    recipe = work / "both.repro"
    recipe.write_text(BOTH)
    sources = Sources(mirrors={"debian": vm_mirror})
    api.lock(recipe, sources=sources)
    started = time.monotonic()
    result = api.build(
        recipe, out_dir=base / "out", jobs=2, store_path=base / "store", sources=sources
    )
    took = time.monotonic() - started
    print(f"built the rootfs, the BIOS disk and the live ISO in {took:.0f} s")
    shutil.rmtree(base / "store")  # gigabytes; the outputs are copies
    return {
        "outputs": {o.name: o for o in result.outputs},
        "secrets": result.secrets,
        "base": base,
    }


def test_digests_are_the_recorded_ones(built: dict[str, Any]) -> None:
    """Reproducible across builds and time: the committed lockfiles hold the digests."""
    outputs = built["outputs"]
    assert outputs["raw"].sha256 == recorded(RECIPES / "debian-vm.repro.lock", "raw")
    assert outputs["iso"].sha256 == recorded(RECIPES / "debian-live.repro.lock", "iso")
    assert built["secrets"] == ()


def test_tree_has_no_machine_state_and_the_options(built: dict[str, Any]) -> None:
    check_tree(Path(built["outputs"]["root"].path))


def boot_all(
    runs: dict[str, tuple[Path, str, str, str]], logs: Path
) -> dict[str, dict[str, float]]:
    """Boot each (image, firmware, media, format) at once, each in its own thread."""
    results: dict[str, dict[str, float]] = {}
    errors: dict[str, BaseException] = {}

    def one(name: str, image: Path, firmware: str, media: str, fmt: str) -> Callable[[], None]:
        def go() -> None:
            try:
                argv = qemu_argv(image, firmware=firmware, media=media, fmt=fmt)
                with Vm(argv, logs / f"{name}.log") as vm:
                    results[name] = log_in_and_use(
                        vm, user=USER, password=PASSWORD, timeout=BOOT_TIMEOUT
                    )
            except BaseException as exc:  # reported below, per VM
                errors[name] = exc

        return go

    threads = [threading.Thread(target=one(n, *spec)) for n, spec in runs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, times in sorted(results.items()):
        print(name + ": " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    if errors:
        name, exc = sorted(errors.items())[0]
        raise AssertionError(f"{name}: {exc}") from exc
    return results


def test_disk_and_live_iso_boot_and_log_in(built: dict[str, Any], tmp_path: Path) -> None:
    outputs = built["outputs"]
    boot_all(
        {
            "raw-bios-disk": (Path(outputs["raw"].path), "bios", "disk", "raw"),
            "iso-uefi-usb": (Path(outputs["iso"].path), "uefi", "usb", "raw"),
        },
        tmp_path,
    )


# ---------------------------------------------------------------------------
# make test-boot: every recipe built twice from nothing, every way to boot
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_twice(vm_mirror: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """debian-vm.repro and debian-live.repro, each built twice in fresh stores (--locked)."""
    base = tmp_path_factory.mktemp("vm-twice")
    sources = Sources(mirrors={"debian": vm_mirror})
    digests: dict[str, list[str]] = {}
    paths: dict[str, Path] = {}
    for round_ in (1, 2):
        work = recipe_copy(base / f"recipes-{round_}")
        for recipe in ("debian-vm", "debian-live"):
            started = time.monotonic()
            result = api.build(
                work / f"{recipe}.repro",
                out_dir=base / f"out-{round_}" / recipe,
                jobs=2,
                store_path=base / f"store-{round_}-{recipe}",
                sources=sources,
                locked=True,
            )
            print(f"{recipe} build {round_}: {time.monotonic() - started:.0f} s")
            shutil.rmtree(base / f"store-{round_}-{recipe}")  # gigabytes; keep the outputs
            for o in result.outputs:
                digests.setdefault(f"{recipe}.{o.name}", []).append(o.sha256)
                if round_ == 1:
                    paths[f"{recipe}.{o.name}"] = Path(o.path)
        if round_ == 2:
            shutil.rmtree(base / "out-2")
    return {"digests": digests, "paths": paths}


@pytest.mark.slow
def test_each_recipe_built_twice_is_identical(built_twice: dict[str, Any]) -> None:
    for name, (first, second) in sorted(built_twice["digests"].items()):
        recipe, output = name.split(".")
        print(f"{name}: {first}")
        assert first == second, f"{name} differs between two builds"
        assert first == recorded(RECIPES / f"{recipe}.repro.lock", output)


@pytest.mark.slow
def test_every_way_to_boot(built_twice: dict[str, Any], tmp_path: Path) -> None:
    paths = built_twice["paths"]
    disks = {
        "raw-bios-disk": (paths["debian-vm.raw"], "bios", "disk", "raw"),
        "qcow2-uefi-disk": (paths["debian-vm.qcow2"], "uefi", "disk", "qcow2"),
    }
    iso = paths["debian-live.iso"]
    isos = {
        f"iso-{fw}-{media}": (iso, fw, media, "raw")
        for fw in ("bios", "uefi")
        for media in ("cdrom", "usb")
    }
    # two at a time: this machine has two CPUs
    runs = {**disks, **isos}
    names = sorted(runs)
    for i in range(0, len(names), 2):
        boot_all({n: runs[n] for n in names[i : i + 2]}, tmp_path)
