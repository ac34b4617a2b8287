"""System settings of a rootfs, as mkosi and systemd-firstboot set them.

``locale``, ``timezone``, ``keymap``, ``hosts`` (with ``hostname``),
``enable_units``/``disable_units``/``mask_units`` and the apt
``sources.list``. Each writes the files Debian's own tools would:

* locale: ``/etc/default/locale`` (what Debian's systemd-localed and PAM
  read); a locale other than C/POSIX is compiled by the tree's
  ``locale-gen`` from ``/etc/locale.gen`` (package ``locales``).
* timezone: ``/etc/localtime`` linked to ``/usr/share/zoneinfo/ZONE`` and
  ``/etc/timezone`` (tzdata's own pair).
* keymap: ``/etc/vconsole.conf`` (systemd-vconsole-setup).
* units: a preset file ``/etc/systemd/system-preset/10-reprobuild.preset``
  applied with the tree's ``systemctl --root=/ preset`` (never a running
  systemd), masks with ``systemctl --root=/ mask``; the preset stays, so a
  later ``systemctl preset-all`` agrees.
* hosts: Debian's installer's ``/etc/hosts`` plus the recipe's entries,
  written when ``hostname`` or ``hosts`` is set.
* apt: ``/etc/apt/sources.list`` naming the snapshot's canonical URL (the
  build graph passes it when apt is in the set; ``apt_sources = false``
  opts out).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reprobuild.errors import UsageError
from reprobuild.sandbox import SandboxSpec, run
from reprobuild.stepparams import RootfsParams

Replaceable = Callable[[Path, str], Path]

LOCALE_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
ZONE_RE = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")
KEYMAP_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
UNIT_RE = re.compile(
    r"^[A-Za-z0-9:_.@\\-]+\.(service|socket|target|timer|path|mount|automount|swap)$"
)
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")
PRESET = "/etc/systemd/system-preset/10-reprobuild.preset"
PLAIN_LOCALES = ("C", "POSIX", "C.UTF-8", "C.utf8")


def configure_system(
    tree: Path,
    params: RootfsParams,
    *,
    apt_sources: Sequence[Mapping[str, Any]],
    epoch: int,
    replaceable: Replaceable,
) -> None:
    """Apply every system setting the recipe gives (in a fixed order)."""

    def write(path: str, text: str) -> None:
        dest = replaceable(tree, path)
        dest.write_text(text, encoding="utf-8")
        dest.chmod(0o644)

    commands: list[list[str]] = []
    locale = params.locale
    if locale is not None:
        commands += _locale(tree, locale, write)
    zone = params.timezone
    if zone is not None:
        _timezone(tree, zone, write, replaceable)
    keymap = params.keymap
    if keymap is not None:
        if not KEYMAP_RE.match(keymap):
            raise UsageError(f"keymap {keymap!r} is not a keymap name (like de or us)")
        write("/etc/vconsole.conf", f"KEYMAP={keymap}\n")
    if params.hostname is not None or params.hosts is not None:
        write("/etc/hosts", hosts_file(params.hostname, params.hosts or {}))
    if apt_sources:
        write("/etc/apt/sources.list", sources_list(apt_sources))
    commands += _units(tree, params, write)
    if commands:
        script = "set -e\n" + "".join(" ".join(map(shlex.quote, c)) + "\n" for c in commands)
        run(SandboxSpec(root=tree, command=("/bin/sh", "-c", script), epoch=epoch))


def hosts_file(hostname: str | None, extra: Mapping[str, str]) -> str:
    """Debian's /etc/hosts (as its installer writes it) with the recipe's entries."""
    lines = ["127.0.0.1\tlocalhost"]
    if hostname:
        short = hostname.split(".", 1)[0]
        names = hostname if short == hostname else f"{hostname} {short}"
        lines.append(f"127.0.1.1\t{names}")
    lines += [
        "",
        "# The following lines are desirable for IPv6 capable hosts",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    if extra:
        lines.append("")
    for address in sorted(extra):
        names = " ".join(extra[address].split())
        if not re.match(r"^[0-9A-Fa-f.:]+$", address) or not names:
            raise UsageError(f'hosts."{address}": an IP address and a list of names are needed')
        for name in names.split():
            if not HOSTNAME_RE.match(name):
                raise UsageError(f'hosts."{address}": {name!r} is not a host name')
        lines.append(f"{address}\t{names}")
    return "\n".join(lines) + "\n"


def sources_list(sources: Sequence[Mapping[str, Any]]) -> str:
    """One ``deb`` line per suite. Snapshots' Release files expire, so apt is
    told not to check Valid-Until (as for snapshot.debian.org)."""
    lines = ["# The snapshot this image was built from (written by reprobuild)."]
    for s in sources:
        for suite in s["suites"]:
            components = " ".join(s["components"])
            lines.append(f"deb [check-valid-until=no] {s['url']} {suite} {components}")
    return "\n".join(lines) + "\n"


def _locale(tree: Path, locale: str, write: Callable[[str, str], None]) -> list[list[str]]:
    if not LOCALE_RE.match(locale):
        raise UsageError(f"locale {locale!r} is not a locale name (like en_US.UTF-8)")
    write("/etc/default/locale", f"LANG={locale}\n")
    if locale in PLAIN_LOCALES:
        return []
    supported = tree / "usr/share/i18n/SUPPORTED"
    if not (tree / "usr/sbin/locale-gen").exists() or not supported.is_file():
        raise UsageError(
            f"locale {locale!r} must be generated, and the tree has no locale-gen",
            hint='add "locales" to packages (or use C.UTF-8)',
        )
    entry = next(
        (
            line.strip()
            for line in supported.read_text(errors="replace").splitlines()
            if line.split(" ", 1)[0] == locale
        ),
        None,
    )
    if entry is None:
        raise UsageError(f"locale {locale!r} is not in the tree's /usr/share/i18n/SUPPORTED")
    write("/etc/locale.gen", f"{entry}\n")
    return [["locale-gen"]]


def _timezone(
    tree: Path, zone: str, write: Callable[[str, str], None], replaceable: Replaceable
) -> None:
    if not ZONE_RE.match(zone) or ".." in zone:
        raise UsageError(f"timezone {zone!r} is not a zone name (like Europe/Berlin or UTC)")
    data = tree / "usr/share/zoneinfo" / zone
    if not data.is_file() or (data.is_symlink() and not data.resolve().is_relative_to(tree)):
        raise UsageError(
            f"timezone {zone!r} is not in the tree's /usr/share/zoneinfo",
            hint='add "tzdata" to packages, or check the zone name',
        )
    link = replaceable(tree, "/etc/localtime")
    link.symlink_to(f"/usr/share/zoneinfo/{zone}")
    write("/etc/timezone", f"{zone}\n")


def _units(
    tree: Path, params: RootfsParams, write: Callable[[str, str], None]
) -> list[list[str]]:
    enable, disable, mask = params.enable_units, params.disable_units, params.mask_units
    if not (enable or disable or mask):
        return []
    for unit in (*enable, *disable, *mask):
        if not UNIT_RE.match(unit):
            raise UsageError(f"{unit!r} is not a systemd unit name (like ssh.service)")
    both = sorted(set(enable) & set(disable))
    if both:
        raise UsageError(f"{both[0]} is both enabled and disabled")
    if not any((tree / d / "systemctl").exists() for d in ("usr/bin", "bin")):
        raise UsageError(
            "enable_units/disable_units/mask_units need systemd in the tree (no systemctl)",
            hint='add "systemd" to packages',
        )
    lines = ["# Written by reprobuild from the recipe's enable_units/disable_units."]
    lines += [f"enable {u}" for u in enable] + [f"disable {u}" for u in disable]
    commands: list[list[str]] = []
    if enable or disable:
        write(PRESET, "\n".join(lines) + "\n")
        commands.append(
            ["systemctl", "--root=/", "--preset-mode=full", "preset", *enable, *disable]
        )
    if mask:
        commands.append(["systemctl", "--root=/", "mask", *mask])
    return commands
