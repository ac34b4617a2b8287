"""Arch Linux package signatures, checked as pacman checks them (``SigLevel = Required``).

Arch Linux signs packages, not databases: each package has a detached
signature, as ``%PGPSIG%`` in the sync database and as a ``.sig`` beside the
package. pacman refuses a package without one, with a bad one, or signed by
a key outside the archlinux keyring. reprobuild does the same, three times:

* at ``lock``, each chosen package's signature is read (never trusted): it
  must name a key of the keyring, not one the keyring lists as revoked; the
  lockfile pins the signature and the primary key's fingerprint;
* before a build, replay or check fetches anything, every signature a
  lockfile pins must name the key it pins, a key of the keyring
  (:func:`check_locked_signers`, the ``alpm`` hook of
  :mod:`reprobuild.index_trust`);
* whenever a package's bytes are used (fetched, or taken from the store),
  they are verified against the pinned signature with Sequoia (pysequoia,
  in-process), and the signer must be the pinned key.

A key that expired after it signed still verifies: Sequoia judges a key's
validity at the signature's creation time. Keys listed in ``KEYRING-revoked``
beside the keyring (the file ``pacman-key --populate`` reads, which makes
pacman refuse them) are refused unless the user allows keys that have
expired or been retired since they signed (``--allow-expired``, as for
Debian's Release files): old snapshots need it, since packagers rotate keys
(161 of the 3,290 packages of 2022-09-12 are signed by keys the 2023 keyring
lists as revoked).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reprobuild.archives.openpgp import (
    KeyringIndex,
    decode_signature,
    index_keyring,
    parse_signature,
)
from reprobuild.errors import SignatureError

if TYPE_CHECKING:
    from reprobuild.lockfile import LockedPackage

__all__ = [
    "ArchKeyring",
    "PackageSigner",
    "check_locked_package",
    "check_locked_signers",
    "load_keyring",
    "signer_of",
    "verify_package",
]


@dataclass(frozen=True)
class PackageSigner:
    """Who signed a package: the primary key (what lockfiles pin) and the signing key."""

    fingerprint: str
    key_id: str
    created: int | None


@dataclass(frozen=True)
class ArchKeyring:
    path: Path
    index: KeyringIndex
    revoked: frozenset[str]


_LOADED: dict[tuple[str, int, int], ArchKeyring] = {}
_LOCK = threading.Lock()


def _revoked(path: Path) -> frozenset[str]:
    """Fingerprints in ``NAME-revoked`` beside ``NAME.gpg`` (one per line, ``FPR[:...]``)."""
    listing = path.with_name(f"{path.stem}-revoked")
    try:
        text = listing.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(
        line.split(":", 1)[0].strip().upper() for line in text.splitlines() if line.strip()
    )


def load_keyring(path: Path) -> ArchKeyring:
    """The keyring at ``path``, indexed once per process (and per content on disk)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise SignatureError(
            f"cannot read keyring {path}: {exc.strerror}",
            hint="check the keyring path (--keyring archlinux=PATH or the archive definition)",
        ) from None
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        found = _LOADED.get(memo)
        if found is None:
            data = path.read_bytes()
            found = ArchKeyring(path, index_keyring(data, what=str(path)), _revoked(path))
            _LOADED[memo] = found
    return found


def _describe(key_id: str, fingerprint: str | None) -> str:
    return f"key {key_id}" + (f" ({fingerprint})" if fingerprint else "")


def signer_of(
    pgpsig: str | bytes, keyring: ArchKeyring, *, what: str, allow_revoked: bool = False
) -> PackageSigner:
    """The keyring key a signature names; refused when the keyring lacks it, or lists
    it as revoked (unless ``allow_revoked``)."""
    raw = decode_signature(pgpsig, what)
    info = parse_signature(raw, what=what)
    primary = keyring.index.primary(info.issuer_fingerprint, info.key_id)
    if primary is None:
        raise SignatureError(
            f"{what}: signed by {_describe(info.key_id, info.issuer_fingerprint)}, "
            f"which is not in the keyring {keyring.path}",
            hint="pacman refuses it too; if the key is genuine, a newer archlinux keyring "
            "may hold it (--keyring archlinux=PATH); --insecure-allow-unsigned skips "
            "package signatures altogether (recorded in the lockfile)",
        )
    if primary in keyring.revoked and not allow_revoked:
        raise SignatureError(
            f"{what}: signed by {_describe(info.key_id, primary)}, which the keyring "
            f"{keyring.path} lists as revoked",
            hint="pacman refuses it with this keyring; packagers' keys are retired over "
            "time, so old snapshots need --allow-expired (or REPROBUILD_ALLOW_EXPIRED=1), "
            "which accepts keys that were valid when they signed",
        )
    return PackageSigner(primary, info.key_id, info.created)


def verify_package(
    path: Path,
    pgpsig: str,
    fingerprint: str,
    keyring: ArchKeyring,
    *,
    what: str,
    allow_revoked: bool = False,
) -> PackageSigner:
    """Verify a package file against its pinned signature and signer, or refuse it."""
    import pysequoia

    signer = signer_of(pgpsig, keyring, what=what, allow_revoked=allow_revoked)
    if signer.fingerprint != fingerprint.upper():
        raise SignatureError(
            f"{what}: signed by {_describe(signer.key_id, signer.fingerprint)}, but the "
            f"lockfile pins key {fingerprint}",
            hint="the lockfile was edited or the signature does not belong to it; "
            "lock again ('reprobuild lock --update') from a mirror you trust",
        )
    try:
        cert = pysequoia.Cert.from_bytes(keyring.index.certificate(signer.fingerprint))
        sig = pysequoia.Sig.from_bytes(decode_signature(pgpsig, what))
        pysequoia.verify(file=str(path), store=lambda _ids: [cert], signature=sig)
    except (RuntimeError, ValueError, OSError) as exc:
        cause = str(exc).split("\n", 1)[0]
        raise SignatureError(
            f"{what}: the signature by {_describe(signer.key_id, signer.fingerprint)} "
            f"does not verify ({cause})",
            hint="pacman refuses it too: the package's bytes are not what that key signed "
            "(altered or swapped on the mirror), or the key was not valid when it signed",
        ) from None
    return signer


def check_locked_package(
    pkg: Mapping[str, object],
    path: Path,
    *,
    keyring: Callable[[], Path],
    insecure: bool,
    allow_revoked: bool = False,
) -> PackageSigner | None:
    """Verify a package as its lockfile entry pins it (``pgpsig`` and ``fingerprint``).

    An entry without a signature (locked with ``--insecure-allow-unsigned``)
    is refused unless this command also runs with that flag.
    """
    what = f"package {pkg['name']} {pkg['version']} ({pkg['filename']})"
    pgpsig, fingerprint = pkg.get("pgpsig"), pkg.get("fingerprint")
    if not isinstance(pgpsig, str) or not isinstance(fingerprint, str):
        if insecure:
            return None
        raise SignatureError(
            f"{what}: the lockfile pins no signature for it (it was locked with "
            "--insecure-allow-unsigned)",
            hint="pass --insecure-allow-unsigned to use it anyway, or lock again without it",
        )
    return verify_package(
        path,
        pgpsig,
        fingerprint,
        load_keyring(keyring()),
        what=what,
        allow_revoked=allow_revoked,
    )


def check_locked_signers(
    packages: Sequence[LockedPackage],
    keyring: Callable[[], Path],
    *,
    insecure: bool,
    allow_revoked: bool,
) -> None:
    """Before anything is fetched: every Arch package a lockfile pins carries a
    signature naming a key of the keyring, the key the lockfile pins for it.

    The package's bytes are verified against that signature when they are
    used (:func:`check_locked_package`); this refuses a lockfile that could
    never pass, naming the package, before any download.
    """
    ring: ArchKeyring | None = None
    for p in packages:
        what = f"package {p.name} {p.version} ({p.filename})"
        if p.pgpsig is None or p.fingerprint is None:
            if insecure:
                continue
            raise SignatureError(
                f"{what}: the lockfile pins no signature for it (it was locked with "
                "--insecure-allow-unsigned)",
                hint="pass --insecure-allow-unsigned to use it anyway, or lock again without it",
            )
        ring = ring or load_keyring(keyring())
        signer = signer_of(p.pgpsig, ring, what=what, allow_revoked=allow_revoked)
        if signer.fingerprint != p.fingerprint.upper():
            raise SignatureError(
                f"{what}: signed by {_describe(signer.key_id, signer.fingerprint)}, but the "
                f"lockfile pins key {p.fingerprint}",
                hint="the lockfile was edited; lock again ('reprobuild lock --update') "
                "from a mirror you trust",
            )
