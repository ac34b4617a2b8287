"""Signatures that must be contradicted: a bad one beside good ones, an expired key.

The first cases take Debian's genuine bookworm ``InRelease`` (three good
signatures) and damage the signature value of exactly one of them, so gpgv
reports two GOODSIG and one BADSIG: a verifier that settles for "at least one
good signature" accepts it; apt (and reprobuild) must not. The expired-key
cases sign with a throwaway key made and used under gpg's
``--faked-system-time``, so the signature was made while the key was valid
and the key has expired since (gpgv: EXPKEYSIG).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reprobuild.archives.debian.index import verify_inrelease
from reprobuild.archives.signature import verify_clearsigned
from reprobuild.errors import SignatureError

REPO = Path(__file__).resolve().parents[2]
INRELEASE = REPO / "snapshots/demo/archive/debian/20260711T101637Z/dists/bookworm/InRelease"
KEYRING = REPO / "snapshots/keyrings/debian-archive-keyring.gpg"

pytestmark = pytest.mark.skipif(shutil.which("gpgv") is None, reason="gpgv is not installed")

_BEGIN = b"-----BEGIN PGP SIGNATURE-----"
_END = b"-----END PGP SIGNATURE-----"


# ---------------------------------------------------------------- OpenPGP armor


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _packets(data: bytes) -> list[tuple[int, int, int]]:
    """(start, body start, end) of each OpenPGP packet (RFC 4880 §4.2)."""
    out = []
    pos = 0
    while pos < len(data):
        tag = data[pos]
        assert tag & 0x80, "not an OpenPGP packet"
        if tag & 0x40:  # new format
            first = data[pos + 1]
            if first < 192:
                length, hdr = first, 2
            elif first < 224:
                length, hdr = ((first - 192) << 8) + data[pos + 2] + 192, 3
            else:
                assert first == 255, "partial lengths do not occur in signatures"
                length, hdr = int.from_bytes(data[pos + 2 : pos + 6], "big"), 6
        else:
            kind = tag & 3
            size = {0: 1, 1: 2, 2: 4}[kind]
            length, hdr = int.from_bytes(data[pos + 1 : pos + 1 + size], "big"), 1 + size
        out.append((pos, pos + hdr, pos + hdr + length))
        pos += hdr + length
    return out


def split_signatures(inrelease: bytes) -> tuple[bytes, bytes]:
    """(everything up to the signature armor, the binary signature packets)."""
    head, _, rest = inrelease.partition(_BEGIN)
    armor = rest.split(_END)[0]
    lines = armor.strip().splitlines()
    blank = lines.index(b"") if b"" in lines else -1  # armor headers end at a blank line
    body = [ln for ln in lines[blank + 1 :] if not ln.startswith(b"=")]
    return head, base64.b64decode(b"".join(body))


def join_signatures(head: bytes, packets: bytes) -> bytes:
    b64 = base64.b64encode(packets)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    crc = base64.b64encode(_crc24(packets).to_bytes(3, "big"))
    return head + _BEGIN + b"\n\n" + b"\n".join(lines) + b"\n=" + crc + b"\n" + _END + b"\n"


def damage_signature(inrelease: bytes, which: int) -> bytes:
    """The same InRelease with the last byte of signature ``which``'s value flipped."""
    head, packets = split_signatures(inrelease)
    spans = _packets(packets)
    _start, _body, end = spans[which]
    damaged = bytearray(packets)
    damaged[end - 1] ^= 0x01
    return join_signatures(head, bytes(damaged))


# ---------------------------------------------------------------- good + bad


def test_the_armor_round_trips_and_still_verifies() -> None:
    """The helper itself: re-armoring the genuine packets changes nothing gpgv sees."""
    genuine = INRELEASE.read_bytes()
    head, packets = split_signatures(genuine)
    assert len(_packets(packets)) == 3
    again = join_signatures(head, packets)
    assert len(verify_inrelease(again, KEYRING).signers) == 3


@pytest.mark.parametrize("which", [0, 1, 2], ids=["first-bad", "middle-bad", "last-bad"])
def test_one_bad_signature_beside_good_ones_is_refused(which: int) -> None:
    damaged = damage_signature(INRELEASE.read_bytes(), which)
    with pytest.raises(SignatureError, match="bad signature") as info:
        verify_inrelease(damaged, KEYRING, what="bookworm/InRelease")
    assert "bookworm/InRelease" in info.value.message


def test_lock_refuses_an_inrelease_with_a_bad_signature_among_good_ones(tmp_path: Path) -> None:
    """The same through the command a user runs: exit 2, no lockfile."""
    from tests.support.cli import reprobuild

    mirror = tmp_path / "mirror"
    shutil.copytree(REPO / "snapshots/demo/archive", mirror / "archive")
    inrelease = mirror / "archive/debian/20260711T101637Z/dists/bookworm/InRelease"
    inrelease.write_bytes(damage_signature(inrelease.read_bytes(), 2))
    (tmp_path / "r.repro").write_text(
        'let snap = snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; };\n'
        'in { t = tarball { root = rootfs { snapshot = snap; variant = "none"; packages = [ "netbase" ]; }; }; }\n'
    )
    r = reprobuild(
        tmp_path, "lock", "--mirror", f"debian={(mirror / 'archive/debian').as_uri()}/", "r.repro"
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "bad signature" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r.repro.lock").exists()


# ---------------------------------------------------------------- expired keys


def _gpg(home: Path, *args: str, when: str | None = None) -> None:
    faked = ("--faked-system-time", f"{when}!") if when else ()
    subprocess.run(
        ["gpg", "--batch", "--quiet", "--no-tty", *faked, "--pinentry-mode", "loopback",
         "--passphrase", "", *args],
        env={"PATH": os.environ["PATH"], "GNUPGHOME": str(home), "LC_ALL": "C"},
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def expired(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """A Release clearsigned in 2020 by a key that expired a day after it was made."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (Debian package gnupg)")
    base = tmp_path_factory.mktemp("expired")
    home = Path(subprocess.check_output(["mktemp", "-d", "/tmp/rb-gpg-XXXXXX"], text=True).strip())
    try:
        home.chmod(0o700)
        _gpg(home, "--quick-gen-key", "expired <expired@reprobuild.invalid>", "ed25519", "sign",
             "1d", when="20200101T000000")  # fmt: skip
        release = base / "Release"
        release.write_text(
            "Origin: test\nSuite: bookworm\nCodename: bookworm\nDate: Wed, 01 Jan 2020 01:00:00 UTC\n"
        )
        _gpg(home, "--clearsign", "--output", str(base / "InRelease"), str(release),
             when="20200101T010000")  # fmt: skip
        keyring = base / "keyring.gpg"
        _gpg(home, "--output", str(keyring), "--export")
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(home)},
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)
    return (base / "InRelease").read_bytes(), keyring


def test_a_key_that_has_expired_is_refused(expired: tuple[bytes, Path]) -> None:
    data, keyring = expired
    with pytest.raises(SignatureError, match="has expired") as info:
        verify_clearsigned(data, keyring, what="InRelease")
    assert info.value.hint and "expired" in info.value.hint
    with pytest.raises(SignatureError, match="has expired"):
        verify_inrelease(data, keyring, what="InRelease")


def test_an_expired_key_is_accepted_only_when_asked(expired: tuple[bytes, Path]) -> None:
    data, keyring = expired
    verified = verify_clearsigned(data, keyring, what="InRelease", allow_expired_keys=True)
    assert verified.text.startswith(b"Origin: test\n")
    assert len(verified.signers) == 1 and len(verified.fingerprint) == 40


def test_an_expired_key_beside_a_bad_signature_is_still_refused(
    expired: tuple[bytes, Path],
) -> None:
    """allow_expired_keys never turns a bad signature into an acceptable one."""
    data, keyring = expired
    edited = data.replace(b"Suite: bookworm", b"Suite: trixie\x20")
    with pytest.raises(SignatureError, match="bad signature"):
        verify_clearsigned(edited, keyring, what="InRelease", allow_expired_keys=True)


# ---------------------------------------------------------------- detached signatures


@pytest.fixture(scope="module")
def detached(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    """A file, its detached signature (as Arch's .sig), the keyring and the key's fingerprint."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (Debian package gnupg)")
    base = tmp_path_factory.mktemp("detached")
    home = Path(subprocess.check_output(["mktemp", "-d", "/tmp/rb-gpg-XXXXXX"], text=True).strip())
    try:
        home.chmod(0o700)
        _gpg(home, "--quick-gen-key", "signer <signer@reprobuild.invalid>", "ed25519", "sign",
             "never")  # fmt: skip
        data = base / "pkg.tar.zst"
        data.write_bytes(b"package bytes\n")
        _gpg(home, "--detach-sign", "--output", str(base / "pkg.tar.zst.sig"), str(data))
        keyring = base / "keyring.gpg"
        _gpg(home, "--output", str(keyring), "--export")
        listing = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-keys"],
            env={"PATH": os.environ["PATH"], "GNUPGHOME": str(home), "LC_ALL": "C"},
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        fpr = next(ln.split(":")[9] for ln in listing.stdout.splitlines() if ln.startswith("fpr:"))
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(home)},
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)
    return data, base / "pkg.tar.zst.sig", keyring, fpr.upper()


@pytest.mark.parametrize("tool", ["sqv", "gpgv"])
def test_a_detached_signature_verifies_and_names_its_key(
    detached: tuple[Path, Path, Path, str], tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reprobuild.archives import signature

    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")
    if tool == "gpgv":  # as on a machine without sqv
        real = shutil.which
        monkeypatch.setattr(signature.shutil, "which", lambda n: None if n == "sqv" else real(n))
    data, sig, keyring, fpr = detached
    signers = signature.verify_detached(data, sig, keyring)
    assert len(signers) == 1 and signers[0].fingerprint == fpr
    altered = data.with_name("altered.tar.zst")
    altered.write_bytes(b"package bytes, altered\n")
    with pytest.raises(SignatureError, match=r"altered\.tar\.zst"):
        signature.verify_detached(altered, sig, keyring)
    with pytest.raises(SignatureError, match=r"is missing \(unsigned file\)"):
        signature.verify_detached(data, data.with_name("none.sig"), keyring)


# ---------------------------------------------------------------- gpgv's status lines

FPR = "A" * 40
PRIMARY = "B" * 40


def _validsig(fpr: str = FPR, primary: str | None = PRIMARY, created: str = "1577836800") -> str:
    """gpgv's VALIDSIG line (GnuPG doc/DETAILS): the primary key is its tenth argument."""
    tail = f" 4 0 22 8 00 {primary}" if primary else ""
    return f"[GNUPG:] VALIDSIG {fpr} 2020-01-01 {created} 0{tail}"


def test_status_lines_are_grouped_and_judged(tmp_path: Path) -> None:
    from reprobuild.archives.signature import Signer, _judge, _parse_gpg_status

    def judge(status: str, allow: bool = False) -> tuple[Signer, ...]:
        return _judge(_parse_gpg_status(status), "R", tmp_path, allow_expired_keys=allow)

    good = f"[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG KEY1 uid\n{_validsig()}\n"
    assert judge("gpgv: noise\n" + good) == (Signer(FPR, PRIMARY, 1577836800),)
    # without the primary key's field, the key is its own primary; no time, no date
    short = f"[GNUPG:] GOODSIG KEY1\n{_validsig(fpr='c' * 40, primary=None, created='x')}\n"
    assert judge(short) == (Signer("C" * 40, "C" * 40, None),)
    # an expired signature: refused, unless expired signatures are allowed
    expsig = f"[GNUPG:] NEWSIG\n[GNUPG:] EXPSIG KEY1 uid\n{_validsig()}\n"
    with pytest.raises(SignatureError, match="R: the signature has expired"):
        judge(expsig)
    assert judge(expsig, allow=True) == (Signer(FPR, PRIMARY, 1577836800),)
    # a key that has expired, with a valid signature: named, with its own hint
    expkey = f"[GNUPG:] NEWSIG\n[GNUPG:] EXPKEYSIG KEY9 uid\n{_validsig()}\n"
    with pytest.raises(SignatureError, match="the signing key KEY9 has expired") as info:
        judge(expkey)
    assert info.value.hint is not None and info.value.hint.startswith("old snapshots")
    # ... and without one: the general refusal naming the keyring
    with pytest.raises(SignatureError, match="the signing key KEY9 has expired") as info:
        judge("[GNUPG:] EXPKEYSIG KEY9 uid\n")
    assert info.value.hint is not None and str(tmp_path) in info.value.hint
    # a key missing from the keyring: ERRSIG, then NO_PUBKEY names it
    missing = (
        "[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG KEY7 22 8 00 1577836800 9 -\n[GNUPG:] NO_PUBKEY KEY7\n"
    )
    with pytest.raises(SignatureError, match="R: signed by key KEY7, which is not in the keyring"):
        judge(missing)
    # NO_PUBKEY never turns a good signature into a missing key
    assert judge(good + "[GNUPG:] NO_PUBKEY KEY1\n") == (Signer(FPR, PRIMARY, 1577836800),)
    # a good signature beside one whose key is missing: accepted (apt does the same)
    assert judge(good + missing) == (Signer(FPR, PRIMARY, 1577836800),)
    # a revoked key; no signature at all
    with pytest.raises(SignatureError, match="the signing key KEY3 has been revoked"):
        judge("[GNUPG:] REVKEYSIG KEY3 uid\n")
    with pytest.raises(SignatureError, match="no OpenPGP signature found"):
        judge("[GNUPG:] NODATA 1\n")
    with pytest.raises(SignatureError, match="could not be checked"):
        judge("[GNUPG:] ERRSIG KEY7 22 8 00 1577836800 4 -\n")


# ---------------------------------------------------------------- OpenPGP packet framing


def _new_length(n: int) -> bytes:
    """RFC 4880 4.2.2: one, two or five octets."""
    if n < 192:
        return bytes([n])
    if n < 8384:
        return bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    return b"\xff" + n.to_bytes(4, "big")


def test_every_packet_length_form_is_framed_exactly() -> None:
    from reprobuild.archives.openpgp import _packets, _subpackets

    data = b""
    expected = []
    for tag, n in [
        (2, 0),
        (2, 5),
        (13, 191),
        (2, 192),
        (6, 300),
        (2, 8383),
        (14, 8384),
        (2, 70000),
    ]:
        head = bytes([0xC0 | tag]) + _new_length(n)
        expected.append((tag, len(data), len(data) + len(head), len(data) + len(head) + n))
        data += head + bytes(n)
    for tag, kind, n in [(2, 0, 7), (6, 1, 300), (13, 2, 70000)]:  # old format: 1, 2, 4 octets
        head = bytes([0x80 | tag << 2 | kind]) + n.to_bytes((1, 2, 4)[kind], "big")
        expected.append((tag, len(data), len(data) + len(head), len(data) + len(head) + n))
        data += head + bytes(n)
    # old format, indeterminate length: the rest of the data
    expected.append((2, len(data), len(data) + 1, len(data) + 1 + 9))
    data += bytes([0x80 | 2 << 2 | 3]) + bytes(9)
    assert list(_packets(data, "sig")) == expected

    for bad in [b"\xc2", b"\xc2\xc0", b"\xc2\x05abc", b"\xc2\xffabc", b"\x89\x01\x00a"]:
        with pytest.raises(SignatureError, match="sig: truncated OpenPGP packet"):
            list(_packets(bad, "sig"))
    with pytest.raises(SignatureError, match="partial-length"):
        list(_packets(b"\xc2\xe0" + bytes(8), "sig"))
    with pytest.raises(SignatureError, match="bad packet header at byte 3"):
        list(_packets(b"\xc2\x01a\x02", "sig"))

    # signature subpackets (5.2.3.1): the same lengths, the type in the first body octet
    sub = b""
    want = []
    for kind, n in [(2, 4), (16, 190), (33, 191), (9, 300), (26, 8384)]:
        sub += _new_length(n + 1) + bytes([kind | 0x80]) + bytes([kind]) * n
        want.append((kind, bytes([kind]) * n))
    assert list(_subpackets(sub)) == want
    assert list(_subpackets(b"\x00\x02")) == []  # a zero length ends the list
    assert list(_subpackets(b"\x05\x02ab")) == []  # as one longer than the data


def test_gpgv_says_nothing_on_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    """gpgv's own chatter is captured (reprobuild reports in its own words)."""
    verified = verify_clearsigned(INRELEASE.read_bytes(), KEYRING, what="InRelease")
    assert verified.signers
    assert capfd.readouterr() == ("", "")
