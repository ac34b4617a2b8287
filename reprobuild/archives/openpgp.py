"""Just enough OpenPGP packet reading (RFC 4880/9580) to know who signed what.

Verification itself is left to Sequoia (``sqv``, ``gpgv`` or pysequoia); this
module only reads the framing: which key a detached signature names (its
issuer fingerprint or key ID subpacket, and its creation time), and which
primary key each key and subkey of a keyring belongs to, with the bytes of
each certificate, so a verifier is handed only the certificate it needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from reprobuild.archives.signature import dearmor
from reprobuild.errors import SignatureError

__all__ = ["KeyringIndex", "SignatureInfo", "index_keyring", "parse_signature"]

_SIGNATURE = 2
_PUBLIC_KEY = 6
_PUBLIC_SUBKEY = 14


def _packets(data: bytes, what: str) -> Iterator[tuple[int, int, int, int]]:
    """(tag, packet start, body start, body end) of each packet."""
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        head = data[pos]
        if not head & 0x80:
            raise SignatureError(f"{what}: not OpenPGP data (bad packet header at byte {pos})")
        if head & 0x40:  # new format
            tag = head & 0x3F
            if pos + 1 >= end:
                raise SignatureError(f"{what}: truncated OpenPGP packet")
            first = data[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                if pos + 2 >= end:
                    raise SignatureError(f"{what}: truncated OpenPGP packet")
                length, pos = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 2 : pos + 6], "big"), pos + 6
            else:
                raise SignatureError(f"{what}: partial-length OpenPGP packets are not supported")
        else:  # old format
            tag = (head >> 2) & 0x0F
            size = (1, 2, 4, 0)[head & 0x03]
            if size == 0:
                length, pos = end - pos - 1, pos + 1
            else:
                length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
                pos += 1 + size
        if pos + length > end:
            raise SignatureError(f"{what}: truncated OpenPGP packet")
        yield tag, start, pos, pos + length
        pos += length


@dataclass(frozen=True)
class SignatureInfo:
    """What a signature packet says about itself (nothing here is verified)."""

    version: int
    created: int | None
    issuer_fingerprint: str | None  # upper-case hex
    issuer_key_id: str | None  # upper-case hex, 16 digits

    @property
    def key_id(self) -> str:
        """The signing key's ID: the issuer subpacket, else the end of a v4 fingerprint."""
        if self.issuer_key_id:
            return self.issuer_key_id
        fpr = self.issuer_fingerprint or ""
        return fpr[-16:] if len(fpr) == 40 else fpr[:16]


def _subpackets(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos < len(data):
        first = data[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            length, pos = ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
        else:
            length, pos = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
        if length == 0 or pos + length > len(data):
            return
        yield data[pos] & 0x7F, data[pos + 1 : pos + length]
        pos += length


def decode_signature(text: str | bytes, what: str) -> bytes:
    """Binary signature bytes from base64 (``%PGPSIG%``), armor, or binary."""
    if isinstance(text, str):
        try:
            return base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(f"{what}: the signature is not valid base64") from None
    return dearmor(text)


def parse_signature(data: bytes, *, what: str = "signature") -> SignatureInfo:
    """The first signature packet of a detached signature."""
    for tag, _, body, end in _packets(data, what):
        if tag != _SIGNATURE:
            continue
        sig = data[body:end]
        if not sig:
            break
        version = sig[0]
        if version == 3 and len(sig) >= 15:
            when = int.from_bytes(sig[3:7], "big")
            return SignatureInfo(3, when, None, sig[7:15].hex().upper())
        if version in (4, 5, 6) and len(sig) >= 6:
            wide = version == 6
            count = 4 if wide else 2
            hashed_len = int.from_bytes(sig[4 : 4 + count], "big")
            hashed = sig[4 + count : 4 + count + hashed_len]
            rest = 4 + count + hashed_len
            unhashed_len = int.from_bytes(sig[rest : rest + count], "big")
            unhashed = sig[rest + count : rest + count + unhashed_len]
            created: int | None = None
            fpr: str | None = None
            keyid: str | None = None
            for kind, value in (*_subpackets(hashed), *_subpackets(unhashed)):
                if kind == 2 and len(value) == 4 and created is None:
                    created = int.from_bytes(value, "big")
                elif kind == 16 and len(value) == 8 and keyid is None:
                    keyid = value.hex().upper()
                elif kind == 33 and len(value) in (21, 33) and fpr is None:
                    fpr = value[1:].hex().upper()
            if fpr is None and keyid is None:
                break
            return SignatureInfo(version, created, fpr, keyid)
        break
    raise SignatureError(f"{what}: no OpenPGP signature found")


@dataclass(frozen=True)
class KeyringIndex:
    """Every key and subkey of a keyring, by fingerprint and by key ID.

    ``keys`` maps either to the primary key's fingerprint; ``certs`` maps a
    primary fingerprint to the byte range of its certificate in ``binary``.
    """

    keys: Mapping[str, str]
    certs: Mapping[str, tuple[int, int]]
    binary: bytes

    def primary(self, fingerprint: str | None, key_id: str | None) -> str | None:
        """The primary key a signature names, preferring its fingerprint."""
        if fingerprint is not None:
            return self.keys.get(fingerprint.upper())
        if key_id is not None:
            return self.keys.get(key_id.upper())
        return None

    def certificate(self, primary: str) -> bytes:
        start, end = self.certs[primary]
        return self.binary[start:end]


def _key_fingerprint(body: bytes) -> tuple[str, str] | None:
    """(fingerprint, key ID) of a v4, v5 or v6 key packet body; None for v3."""
    if not body:
        return None
    version = body[0]
    if version == 4:
        digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).hexdigest()
        return digest.upper(), digest[-16:].upper()
    if version in (5, 6):
        prefix = b"\x9a" if version == 5 else b"\x9b"
        digest = hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest()
        return digest.upper(), digest[:16].upper()
    return None


def index_keyring(data: bytes, *, what: str = "keyring") -> KeyringIndex:
    """Index a keyring (binary or armored, several certificates)."""
    binary = dearmor(data)
    keys: dict[str, str] = {}
    certs: dict[str, tuple[int, int]] = {}
    primary: str | None = None
    cert_start = 0
    last_end = 0
    for tag, start, body, end in _packets(binary, what):
        if tag == _PUBLIC_KEY:
            if primary is not None:
                certs[primary] = (cert_start, start)
            ident = _key_fingerprint(binary[body:end])
            primary = ident[0] if ident else None
            cert_start = start
            if ident:
                keys.setdefault(ident[0], ident[0])
                keys.setdefault(ident[1], ident[0])
        elif tag == _PUBLIC_SUBKEY and primary is not None:
            ident = _key_fingerprint(binary[body:end])
            if ident:
                keys.setdefault(ident[0], primary)
                keys.setdefault(ident[1], primary)
        last_end = end
    if primary is not None:
        certs[primary] = (cert_start, last_end)
    return KeyringIndex(keys, certs, binary)
