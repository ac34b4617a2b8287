"""OpenPGP verification by calling ``gpgv`` or ``sqv``, never a keyring of the user's.

Signatures are the only thing tying a snapshot to its archive, so every
failure is an error with its cause: there is no "unsigned but continue" path.
The tools run with an empty temporary home directory, so the user's own
GnuPG configuration and trust database can neither help nor hurt.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reprobuild.errors import SignatureError

__all__ = [
    "Signer",
    "VerifiedText",
    "dearmor",
    "verify_clearsigned",
    "verify_detached",
]

_CLEARSIGN_BEGIN = b"-----BEGIN PGP SIGNED MESSAGE-----"
_SIG_BEGIN = b"-----BEGIN PGP SIGNATURE-----"
_SIG_END = b"-----END PGP SIGNATURE-----"
_TOOL_TIMEOUT = 120
# Armor lines at a line start; dash-escaped text ("- -----BEGIN...") never matches.
_ARMOR_LINE = re.compile(
    rb"^-----(?:BEGIN PGP SIGNED MESSAGE|BEGIN PGP SIGNATURE|END PGP SIGNATURE)-----", re.M
)


@dataclass(frozen=True)
class Signer:
    """One good signature: the (sub)key that made it and the primary key it belongs to.

    sqv only reports the certificate, so with sqv both fields hold the primary key.
    """

    fingerprint: str
    primary_fingerprint: str
    created: int | None = None


@dataclass(frozen=True)
class VerifiedText:
    """The bytes a signature vouches for, as the verifier output them."""

    text: bytes
    signers: tuple[Signer, ...]

    @property
    def fingerprint(self) -> str:
        """Primary-key fingerprint of the first good signature (recorded in lockfiles).

        The primary key rather than the signing subkey: it is what archives
        publish, and what both gpgv and sqv report, so the lockfile does not
        depend on which tool verified.
        """
        return self.signers[0].primary_fingerprint


def dearmor(data: bytes) -> bytes:
    """Turn ASCII-armored key blocks into binary OpenPGP packets.

    gpgv 2.2 only reads binary keyrings, but distributions ship some armored
    (Debian's ``archlinux.gpg`` is); several concatenated blocks are joined.
    """
    if not data.lstrip().startswith(b"-----BEGIN PGP"):
        return data
    out = bytearray()
    body: list[bytes] | None = None
    in_headers = False
    for raw in data.splitlines():
        line = raw.strip()
        if line.startswith(b"-----BEGIN PGP"):
            body, in_headers = [], True
        elif line.startswith(b"-----END PGP"):
            if body is not None:
                out += base64.b64decode(b"".join(body))
            body = None
        elif body is not None:
            if in_headers:
                if not line:
                    in_headers = False
                elif b":" not in line:
                    in_headers = False
                    body.append(line)
            elif line and not line.startswith(b"="):
                body.append(line)
    return bytes(out)


def _gpgv_keyring(keyring: Path, workdir: Path) -> Path:
    """An absolute path to a binary copy of ``keyring`` that gpgv can read."""
    try:
        data = keyring.read_bytes()
    except OSError as exc:
        raise SignatureError(
            f"cannot read keyring {keyring}: {exc.strerror}",
            hint="check the keyring path in the archive definition",
        ) from exc
    binary = dearmor(data)
    if binary is data:
        return keyring.resolve()
    path = workdir / "keyring.gpg"
    path.write_bytes(binary)
    return path


@dataclass
class _SigState:
    status: str = ""
    key: str = ""
    validsig: Signer | None = None


def _parse_gpg_status(status: str) -> list[_SigState]:
    """Group gpgv's ``[GNUPG:]`` lines by signature (each starts with NEWSIG)."""
    sigs: list[_SigState] = []
    for line in status.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        parts = line.split()[1:]
        kw = parts[0]
        if kw == "NEWSIG" or not sigs:
            sigs.append(_SigState())
            if kw == "NEWSIG":
                continue
        cur = sigs[-1]
        if kw in ("GOODSIG", "BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "ERRSIG"):
            cur.status = kw
            cur.key = parts[1] if len(parts) > 1 else ""
        elif kw == "NO_PUBKEY" and cur.status in ("", "ERRSIG"):
            cur.status, cur.key = "NO_PUBKEY", parts[1]
        elif kw == "NODATA":
            cur.status = cur.status or "NODATA"
        elif kw == "VALIDSIG" and len(parts) >= 3:
            primary = parts[10] if len(parts) > 10 else parts[1]
            created = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else None
            cur.validsig = Signer(parts[1].upper(), primary.upper(), created)
    return sigs


_CAUSES = {
    "BADSIG": "bad signature (the signed content was modified)",
    "ERRSIG": "signature could not be checked (key missing from the keyring or "
    "unsupported algorithm)",
    "NO_PUBKEY": "signed by key {key}, which is not in the keyring",
    "EXPSIG": "the signature has expired",
    "EXPKEYSIG": "the signing key {key} has expired",
    "REVKEYSIG": "the signing key {key} has been revoked",
    "NODATA": "no OpenPGP signature found (unsigned file)",
}


def _judge(
    sigs: Sequence[_SigState], what: str, keyring: Path, *, allow_expired_keys: bool
) -> tuple[Signer, ...]:
    """Accept when at least one signature is good and none is bad, as apt does."""
    good: list[Signer] = []
    causes: list[str] = []
    for sig in sigs:
        accepted = sig.status == "GOODSIG" or (
            allow_expired_keys and sig.status in ("EXPKEYSIG", "EXPSIG")
        )
        if sig.status == "EXPKEYSIG" and not accepted and sig.validsig is not None:
            raise SignatureError(
                f"{what}: {_CAUSES['EXPKEYSIG'].format(key=sig.key)}",
                hint="old snapshots are often signed by keys that expired since; "
                "allow expired keys for this archive if the snapshot date predates the expiry",
            )
        if sig.status == "BADSIG":
            raise SignatureError(
                f"{what}: {_CAUSES['BADSIG']}",
                hint="the file was altered or truncated; fetch it again from the snapshot",
            )
        if accepted and sig.validsig is not None:
            good.append(sig.validsig)
        elif sig.status:
            causes.append(_CAUSES.get(sig.status, sig.status).format(key=sig.key))
    if good:
        return tuple(good)
    cause = "; ".join(dict.fromkeys(causes)) or _CAUSES["NODATA"]
    raise SignatureError(
        f"{what}: {cause}",
        hint=f"verified against keyring {keyring}; make sure the archive definition "
        "names the keyring of the archive that signed it",
    )


def _require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SignatureError(
            f"cannot verify signatures: {name} is not installed",
            hint=f"install the Debian package {package} (apt-get install {package})",
        )
    return path


def _run_gpgv(
    args: list[str], keyring: Path, workdir: Path
) -> tuple[subprocess.CompletedProcess[bytes], str]:
    gpgv = _require_tool("gpgv", "gpgv")
    home = workdir / "home"
    home.mkdir(mode=0o700)
    ring = _gpgv_keyring(keyring, workdir)
    status_path = workdir / "status"
    with status_path.open("wb") as status:
        proc = subprocess.run(
            [
                gpgv,
                "--homedir",
                str(home),
                "--status-fd",
                str(status.fileno()),
                "--keyring",
                str(ring),
                *args,
            ],
            capture_output=True,
            pass_fds=(status.fileno(),),
            timeout=_TOOL_TIMEOUT,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    return proc, status_path.read_text(errors="replace")


def _check_clearsign_structure(data: bytes, what: str) -> None:
    """Refuse anything but exactly one clearsigned message with nothing around it.

    gpgv verifies the signed part but would happily ignore text before or after
    it; refusing such files up front rules out smuggled, unsigned fields.
    """
    if not data.startswith(_CLEARSIGN_BEGIN):
        if _CLEARSIGN_BEGIN in data:
            cause = "text before the signed part"
        else:
            cause = "no OpenPGP signature found (unsigned file)"
        raise SignatureError(
            f"{what}: {cause}",
            hint="an InRelease file must be a single clearsigned message",
        )
    if len(_ARMOR_LINE.findall(data)) != 3:
        raise SignatureError(
            f"{what}: more than one signed message in one file",
            hint="an InRelease file must be a single clearsigned message",
        )
    end = data.find(_SIG_END)
    if end < 0 or data[end + len(_SIG_END) :].strip():
        raise SignatureError(
            f"{what}: text after the signature block",
            hint="an InRelease file must be a single clearsigned message",
        )


def verify_clearsigned(
    data: bytes, keyring: Path, *, what: str = "signed file", allow_expired_keys: bool = False
) -> VerifiedText:
    """Verify a clearsigned message (InRelease) and return only its signed text.

    The returned text is what gpgv itself wrote out as signed (dash-escaping
    undone), so nothing outside the signature can reach the caller.
    ``allow_expired_keys`` accepts keys that expired after signing, which
    old snapshots need.
    """
    _check_clearsign_structure(data, what)
    with tempfile.TemporaryDirectory(prefix="reprobuild-gpgv-") as tmp:
        work = Path(tmp)
        src = work / "input"
        src.write_bytes(data)
        out = work / "signed"
        proc, status = _run_gpgv(["--output", str(out), str(src)], keyring, work)
        signers = _judge(
            _parse_gpg_status(status), what, keyring, allow_expired_keys=allow_expired_keys
        )
        if proc.returncode not in (0, 2) or not out.exists():
            raise SignatureError(
                f"{what}: gpgv failed: {proc.stderr.decode(errors='replace').strip()}",
                hint="run gpgv by hand on the file to see the full diagnostics",
            )
        return VerifiedText(out.read_bytes(), signers)


def verify_detached(
    data_path: Path,
    sig_path: Path,
    keyring: Path,
    *,
    what: str | None = None,
    allow_expired_keys: bool = False,
) -> tuple[Signer, ...]:
    """Verify a detached signature (Arch ``.sig``, Debian ``Release.gpg``).

    Uses ``sqv`` when installed (it reads armored keyrings and is stricter),
    otherwise ``gpgv``; with neither, fails naming the Debian packages.
    """
    what = what or str(data_path)
    if not sig_path.exists():
        raise SignatureError(
            f"{what}: signature file {sig_path} is missing (unsigned file)",
            hint="fetch the .sig published next to the file",
        )
    sqv = shutil.which("sqv")
    if sqv is not None:
        proc = subprocess.run(
            [sqv, "--keyring", str(keyring), str(sig_path), str(data_path)],
            capture_output=True,
            timeout=_TOOL_TIMEOUT,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        if proc.returncode == 0:
            fprs = proc.stdout.decode().split()
            if fprs:
                return tuple(Signer(f.upper(), f.upper()) for f in fprs)
        err = proc.stderr.decode(errors="replace").strip().replace("\n", "; ")
        raise SignatureError(
            f"{what}: signature {sig_path.name} does not verify: {err or 'sqv failed'}",
            hint=f"verified with sqv against keyring {keyring}; the file may be altered, "
            "or signed by a key that keyring does not hold",
        )
    if shutil.which("gpgv") is None:
        raise SignatureError(
            "cannot verify signatures: neither sqv nor gpgv is installed",
            hint="install the Debian package sqv or gpgv (apt-get install sqv)",
        )
    with tempfile.TemporaryDirectory(prefix="reprobuild-gpgv-") as tmp:
        _, status = _run_gpgv(
            [str(sig_path.resolve()), str(data_path.resolve())], keyring, Path(tmp)
        )
    return _judge(_parse_gpg_status(status), what, keyring, allow_expired_keys=allow_expired_keys)
