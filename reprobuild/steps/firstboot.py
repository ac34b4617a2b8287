"""First-boot state: what packages generate per machine never stays in an image.

Maintainer scripts create some files that must differ between machines: SSH
host keys (openssh-server's postinst runs ``ssh-keygen``), random seeds, a
snakeoil TLS key. Kept in an image, every build differs (they are random)
and every machine made from one image shares the same private keys. So,
after the recipe is applied, :func:`finalize` removes each file in
:data:`MACHINE_FILES` and, where a package would not regenerate it by
itself, adds a small systemd unit that does so on first boot. (``/etc/machine-id``
and ``/var/lib/dbus/machine-id`` are handled by the tree's normalisation:
emptied and removed.)

Then :func:`find_secrets` looks for what slipped through: a private key in
a file no package owns (under ``/etc``, ``/var``, ``/root``, ``/home``,
``/srv``, ``/opt``, ``/usr/local``), or a known per-machine file reprobuild
does not regenerate. The rootfs step reports each as a build warning, and
``reprobuild check`` fails on them.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

Replaceable = Callable[[Path, str], Path]


@dataclass(frozen=True)
class MachineFile:
    """Per-machine files (globs below the root) and how a booted system makes new ones."""

    patterns: tuple[str, ...]
    regenerated_by: str
    unit: str | None = None  # a unit of UNITS that regenerates them, added when they were there


MACHINE_FILES: tuple[MachineFile, ...] = (
    MachineFile(
        ("etc/ssh/ssh_host_*_key", "etc/ssh/ssh_host_*_key.pub"),
        "sshd-keygen.service (added): ssh-keygen -A before ssh.service",
        "sshd-keygen.service",
    ),
    MachineFile(
        ("var/lib/systemd/random-seed",),
        "systemd-random-seed.service saves a new seed from the kernel's pool",
    ),
    MachineFile(
        ("var/lib/urandom/random-seed",),
        "the urandom init script saves a new seed at boot",
    ),
    MachineFile(
        ("var/lib/systemd/credential.secret",),
        "systemd makes a new one on first use (systemd-creds)",
    ),
    MachineFile(
        ("etc/ssl/private/ssl-cert-snakeoil.key", "etc/ssl/certs/ssl-cert-snakeoil.pem"),
        "ssl-cert-snakeoil.service (added): make-ssl-cert generate-default-snakeoil",
        "ssl-cert-snakeoil.service",
    ),
    MachineFile(
        ("var/lib/NetworkManager/secret_key",),
        "NetworkManager makes a new one when it starts",
    ),
    MachineFile(("root/.rnd",), "OpenSSL writes a new one when it needs it"),
)
# The empty-or-removed identifiers, for the record (normalise_tree does it).
NORMALISED = (
    ("etc/machine-id", "emptied: systemd makes a new ID at each boot and commits it "
     "(systemd-machine-id-commit.service) once / is writable"),
    ("var/lib/dbus/machine-id", "removed: D-Bus reads /etc/machine-id instead"),
)
# Known per-machine files reprobuild cannot regenerate: reported, not removed.
REPORTED = (
    "etc/dropbear/dropbear_*_host_key",
    "etc/dropbear/initramfs/dropbear_*_host_key",
    "etc/nvme/hostnqn",
    "etc/nvme/hostid",
    "etc/iscsi/initiatorname.iscsi",
    "etc/hostid",
)

UNITS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name -> (needed program in the tree, unit text, targets whose .wants gets it)
    "sshd-keygen.service": (
        "usr/bin/ssh-keygen",
        """\
# Added by reprobuild: the image holds no SSH host keys; each machine makes its own.
[Unit]
Description=OpenSSH host keys (generated on first boot)
Documentation=man:ssh-keygen(1)
Before=ssh.service ssh.socket sshd.service
After=local-fs.target systemd-remount-fs.service
ConditionPathExists=|!/etc/ssh/ssh_host_ecdsa_key
ConditionPathExists=|!/etc/ssh/ssh_host_ed25519_key
ConditionPathExists=|!/etc/ssh/ssh_host_rsa_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target ssh.service ssh.socket
""",
        ("multi-user.target", "ssh.service", "ssh.socket"),
    ),
    "ssl-cert-snakeoil.service": (
        "usr/sbin/make-ssl-cert",
        """\
# Added by reprobuild: the image holds no snakeoil key; each machine makes its own.
[Unit]
Description=Snakeoil TLS certificate (generated on first boot)
After=local-fs.target systemd-remount-fs.service
ConditionPathExists=!/etc/ssl/private/ssl-cert-snakeoil.key

[Service]
Type=oneshot
ExecStart=/usr/sbin/make-ssl-cert generate-default-snakeoil --force-overwrite
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
""",
        ("multi-user.target",),
    ),
}
_SCANNED = ("etc", "var", "root", "home", "srv", "opt", "usr/local")
_SCAN_LIMIT = 1 << 20  # a key file is small
_MARKERS = (b"PRIVATE KEY-----", b"BEGIN OPENSSH PRIVATE KEY")
_UNSHIPPED_KEY = "a private key no package ships (made at build time or by the recipe)"


@dataclass(frozen=True)
class Finalized:
    removed: tuple[str, ...]  # "/etc/ssh/ssh_host_rsa_key", ...
    units: tuple[str, ...]  # units added to regenerate them


def finalize(tree: Path, *, replaceable: Replaceable) -> Finalized:
    """Remove every per-machine file; add the units that regenerate them."""
    removed: list[str] = []
    units: list[str] = []
    for machine in MACHINE_FILES:
        hits = sorted({rel for pattern in machine.patterns for rel in _glob(tree, pattern)})
        for rel in hits:
            os.unlink(tree / rel)
            removed.append("/" + rel)
        # snakeoil's hash link (/etc/ssl/certs/HASH.0) would dangle
        if hits and machine.unit == "ssl-cert-snakeoil.service":
            removed += _drop_links_to(tree, "etc/ssl/certs", "ssl-cert-snakeoil.pem")
        if hits and machine.unit is not None and _add_unit(tree, machine.unit, replaceable):
            units.append(machine.unit)
    return Finalized(tuple(removed), tuple(units))


def _glob(tree: Path, pattern: str) -> Iterator[str]:
    """Regular files (or links) matching *pattern*, its directory taken literally
    and never reached through a link."""
    directory, _, name = pattern.rpartition("/")
    d = tree
    for part in directory.split("/"):
        d = d / part
        if d.is_symlink() or not d.is_dir():
            return
    for entry in sorted(os.listdir(d)):
        if fnmatch.fnmatchcase(entry, name):
            st = os.lstat(d / entry)
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                yield f"{directory}/{entry}"


def _drop_links_to(tree: Path, directory: str, target: str) -> list[str]:
    d = tree / directory
    gone = []
    if d.is_dir() and not d.is_symlink():
        for entry in sorted(os.listdir(d)):
            p = d / entry
            if p.is_symlink() and os.readlink(p).rsplit("/", 1)[-1] == target:
                p.unlink()
                gone.append(f"/{directory}/{entry}")
    return gone


def _add_unit(tree: Path, name: str, replaceable: Replaceable) -> bool:
    """Install *name* in /etc/systemd/system, enabled; False without systemd or its program."""
    program, text, wanted_by = UNITS[name]
    if not (tree / "usr/lib/systemd/systemd").exists() or not (tree / program).exists():
        return False
    unit = replaceable(tree, f"/etc/systemd/system/{name}")
    unit.write_text(text)
    unit.chmod(0o644)
    for target in wanted_by:
        link = replaceable(tree, f"/etc/systemd/system/{target}.wants/{name}")
        link.symlink_to(f"/etc/systemd/system/{name}")
    return True


# --------------------------------------------------------------------------
# What slipped through
# --------------------------------------------------------------------------


def find_secrets(tree: Path) -> list[str]:
    """Per-machine secrets left in the tree: ``"/PATH: WHY"``, sorted."""
    found: dict[str, str] = {}
    for pattern in REPORTED:
        for rel in _glob(tree, pattern):
            found["/" + rel] = "a per-machine identity generated at build time"
    machine_id = tree / "etc/machine-id"
    if machine_id.is_file() and not machine_id.is_symlink() and machine_id.stat().st_size:
        found["/etc/machine-id"] = "a machine ID (it should be empty)"
    owned = _owned_paths(tree)
    for rel, path in _scanned_files(tree):
        if "/" + rel in owned or "/" + rel in found:
            continue
        try:
            with open(path, "rb") as handle:
                head = handle.read(_SCAN_LIMIT)
        except OSError:
            continue
        if any(marker in head for marker in _MARKERS):
            found["/" + rel] = _UNSHIPPED_KEY
    return [f"{path}: {why}" for path, why in sorted(found.items())]


def _scanned_files(tree: Path) -> Iterator[tuple[str, str]]:
    for top in _SCANNED:
        base = tree / top
        if base.is_symlink() or not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, tree)
            if rel_dir.startswith("var/lib/dpkg") or rel_dir.startswith("var/cache/apt"):
                dirnames.clear()
                continue
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if stat.S_ISREG(st.st_mode) and 0 < st.st_size <= _SCAN_LIMIT:
                    yield f"{rel_dir}/{name}", path


def _owned_paths(tree: Path) -> set[str]:
    """Every path a dpkg package lists (its files are from the snapshot, not generated)."""
    info = tree / "var/lib/dpkg/info"
    owned: set[str] = set()
    if info.is_symlink() or not info.is_dir():
        return owned
    for entry in os.listdir(info):
        if entry.endswith(".list"):
            with open(info / entry, encoding="utf-8", errors="surrogateescape") as handle:
                owned.update(line.rstrip("\n") for line in handle)
    return owned
