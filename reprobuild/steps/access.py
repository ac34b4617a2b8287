"""A way in: password hashes, SSH authorized keys and console autologin.

Applied after the recipe's users exist (``useradd`` in the sandbox), by
editing the tree's own ``/etc/shadow`` (the second field, as ``usermod -p``
would; normalisation then fixes the last-change day) and writing
``~/.ssh/authorized_keys`` (0600 in a 0700 ``.ssh``, owned by the user).
Only hashes are accepted, never passwords: a recipe is shared with its
lockfile, and crypt(3) hashes are what ``/etc/shadow`` holds anyway.

``autologin = "NAME"`` adds systemd drop-ins so the serial and virtual
console gettys log NAME in without a password (for test images).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reprobuild.errors import UsageError
from reprobuild.stepparams import RootfsParams

Replaceable = Callable[[Path, str], Path]
MkDirs = Callable[[Path, Path], None]

# crypt(3) hashes: $id$...; "!" or "*" (optionally followed by a hash) lock the account.
HASH_RE = re.compile(r"^(!|\*|!?\$[0-9a-z]+\$[A-Za-z0-9./$=,+-]+)$")
KEY_RE = re.compile(r"^[^\n\r]*\b(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?$")

_SERIAL = """\
# Written by reprobuild: autologin = "{user}" (a test image).
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin {user} --keep-baud 115200,57600,38400,9600 - $TERM
"""
_VT = """\
# Written by reprobuild: autologin = "{user}" (a test image).
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin {user} --noclear - $TERM
"""


def configure_access(
    tree: Path,
    params: RootfsParams,
    *,
    replaceable: Replaceable,
    mkdirs: MkDirs,
) -> None:
    users = params.users
    hashes: dict[str, str] = {}
    root_hash = params.root_password_hash
    if root_hash is not None:
        hashes["root"] = _checked_hash(root_hash, "root_password_hash")
    for u in users:
        if u.get("password_hash") is not None:
            hashes[u["name"]] = _checked_hash(u["password_hash"], f"users: '{u['name']}'")
    if hashes:
        _set_hashes(tree, hashes)
    for u in users:
        keys = u.get("ssh_authorized_keys")
        if keys:
            _authorized_keys(tree, u["name"], keys, mkdirs)
    autologin = params.autologin
    if autologin is not None:
        if _passwd_entry(tree, autologin) is None:
            raise UsageError(f"autologin: no user {autologin!r} in the tree's /etc/passwd")
        if not (tree / "usr/lib/systemd/system/serial-getty@.service").exists():
            raise UsageError("autologin needs systemd's gettys in the tree", hint="add systemd")
        for unit, text in (("serial-getty@", _SERIAL), ("getty@", _VT)):
            dest = replaceable(tree, f"/etc/systemd/system/{unit}.service.d/autologin.conf")
            dest.write_text(text.format(user=autologin))
            dest.chmod(0o644)


def _checked_hash(value: Any, what: str) -> str:
    if not isinstance(value, str) or not HASH_RE.match(value):
        raise UsageError(
            f"{what}: password_hash must be a crypt(3) hash such as $y$... or $6$...",
            hint="make one with 'mkpasswd -m yescrypt' or 'openssl passwd -6'; "
            "plain passwords are not accepted",
        )
    return value


def _set_hashes(tree: Path, hashes: Mapping[str, str]) -> None:
    shadow = tree / "etc/shadow"
    if shadow.is_symlink() or not shadow.is_file():
        raise UsageError("password hashes need /etc/shadow in the tree (package passwd)")
    lines = shadow.read_text().split("\n")
    seen = set()
    for i, line in enumerate(lines):
        fields = line.split(":")
        if len(fields) >= 2 and fields[0] in hashes:
            fields[1] = hashes[fields[0]]
            lines[i] = ":".join(fields)
            seen.add(fields[0])
    missing = sorted(set(hashes) - seen)
    if missing:
        raise UsageError(f"no user {missing[0]!r} in the tree's /etc/shadow")
    st = shadow.stat()
    shadow.write_text("\n".join(lines))
    os.chmod(shadow, st.st_mode & 0o7777)


def _passwd_entry(tree: Path, name: str) -> list[str] | None:
    passwd = tree / "etc/passwd"
    if passwd.is_symlink() or not passwd.is_file():
        return None
    for line in passwd.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == name:
            return fields
    return None


def _authorized_keys(tree: Path, name: str, keys: Any, mkdirs: MkDirs) -> None:
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise UsageError(f"users: ssh_authorized_keys of '{name}' must be a list of strings")
    for key in keys:
        if not KEY_RE.match(key.strip()):
            raise UsageError(
                f"users: {key[:40]!r}... of '{name}' is not an OpenSSH public key line"
            )
    entry = _passwd_entry(tree, name)
    if entry is None:
        raise UsageError(f"users: no user {name!r} in the tree's /etc/passwd")
    uid, gid, home = int(entry[2]), int(entry[3]), entry[5]
    home_dir = tree / home.lstrip("/")
    if ".." in Path(home).parts:
        raise UsageError(f"users: home {home!r} of '{name}' must not contain '..'")
    if home_dir.is_symlink() or not home_dir.resolve().is_relative_to(tree.resolve()):
        raise UsageError(f"users: home {home} of '{name}' leads out of the tree")
    if not home_dir.is_dir():
        mkdirs(tree, home_dir)
        os.chown(home_dir, uid, gid)
    ssh = home_dir / ".ssh"
    if ssh.is_symlink() or (ssh.exists() and not ssh.is_dir()):
        raise UsageError(f"users: {home}/.ssh of '{name}' is not a directory")
    ssh.mkdir(exist_ok=True)
    os.chmod(ssh, 0o700)
    os.chown(ssh, uid, gid)
    dest = ssh / "authorized_keys"
    if dest.is_symlink():
        dest.unlink()
    dest.write_text("".join(k.strip() + "\n" for k in keys))
    os.chmod(dest, 0o600)
    os.chown(dest, uid, gid)
