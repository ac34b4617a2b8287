"""Signed step-cache records: a cache is untrusted until a trusted key vouches.

Content pulled from a cache is re-hashed on the way in, but that only proves
the bytes are the ones the record names; the record itself ("step K made
these bytes") could be anything whoever can write to the cache wants. So,
as Nix's binary caches do, every record pushed to a cache is signed, and a
record pulled from one is used only when a trusted key signed it:

* a key pair per cache (``reprobuild store keygen NAME SECRET-FILE``): the
  secret file holds ``NAME:BASE64(seed)``, the public key reads
  ``NAME:BASE64(key)`` and goes into the users' setting;
* ``--cache-secret-key FILE`` / ``REPROBUILD_CACHE_SECRET_KEY`` signs what
  ``--push-cache`` sends;
* ``--trusted-key NAME:KEY`` (repeatable) / ``REPROBUILD_TRUSTED_KEYS``
  (separated by white space) are the keys whose signatures are accepted;
* ``--allow-unsigned-cache`` / ``REPROBUILD_ALLOW_UNSIGNED_CACHE=1`` opts
  out (records without a good signature are then used, and said to be).

The signature is ed25519 (``cryptography``) over ``reprobuild-step-record-v1``,
a newline and the record's canonical bytes (its key, kind and every
output's name, sha256 and size). It travels in the cache as the commit
``refs/signatures/NAME/STEP-KEY`` (fixed metadata, so the same record signed
by the same key is the same commit everywhere) holding one blob,
``signature``, with the base64 signature.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprobuild.errors import StoreError, UsageError

if TYPE_CHECKING:
    from reprobuild.store import StepRecord

SIGNATURES_PREFIX = b"refs/signatures/"
DOMAIN = b"reprobuild-step-record-v1\n"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_IDENTITY = b"reprobuild <reprobuild@localhost>"


def _crypto() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def message(record: StepRecord) -> bytes:
    """The bytes a signature covers."""
    return DOMAIN + record.to_bytes()


def _split(text: str, what: str, length: int) -> tuple[str, bytes]:
    name, sep, encoded = text.strip().partition(":")
    if not sep or not _NAME.fullmatch(name):
        raise UsageError(f"{what} {text.strip()[:80]!r} is not NAME:BASE64")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != length:
        raise UsageError(f"{what} {name!r}: not {length} bytes of base64")
    return name, raw


@dataclass(frozen=True)
class SecretKey:
    name: str
    seed: bytes = field(repr=False)

    def sign(self, record: StepRecord) -> bytes:
        key = _crypto().Ed25519PrivateKey.from_private_bytes(self.seed)
        signature: bytes = key.sign(message(record))
        return signature

    def public(self) -> str:
        from cryptography.hazmat.primitives import serialization

        key = _crypto().Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"{self.name}:{base64.b64encode(raw).decode()}"


def generate(name: str, secret_file: Path) -> str:
    """Write a new secret key (mode 0600, never overwritten); return the public key."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"key name {name!r}: letters, digits, '.', '_' and '-' only")
    from cryptography.hazmat.primitives import serialization

    key = _crypto().Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{secret_file} exists; a secret key is never overwritten") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{name}:{base64.b64encode(seed).decode()}\n")
    return SecretKey(name, seed).public()


def load_secret(path: Path) -> SecretKey:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cache secret key {path}: cannot read it ({exc})") from None
    name, seed = _split(text, f"cache secret key {path}:", 32)
    return SecretKey(name, seed)


@dataclass(frozen=True)
class CachePolicy:
    """What makes a cache record acceptable here."""

    trusted: Mapping[str, bytes] = field(default_factory=dict)  # name -> raw public key
    allow_unsigned: bool = False
    secret: SecretKey | None = None  # signs what is pushed

    @classmethod
    def from_settings(
        cls,
        trusted_keys: Sequence[str] = (),
        secret_key: Path | None = None,
        allow_unsigned: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> CachePolicy:
        env = os.environ if environ is None else environ
        texts = [*env.get("REPROBUILD_TRUSTED_KEYS", "").split(), *trusted_keys]
        trusted = dict(_split(t, "trusted key", 32) for t in texts)
        allow = allow_unsigned or env.get("REPROBUILD_ALLOW_UNSIGNED_CACHE", "") not in ("", "0")
        secret_path = secret_key or (
            Path(env["REPROBUILD_CACHE_SECRET_KEY"])
            if env.get("REPROBUILD_CACHE_SECRET_KEY")
            else None
        )
        secret = load_secret(secret_path) if secret_path is not None else None
        if secret is not None:  # one's own key is trusted
            trusted.setdefault(secret.name, _split(secret.public(), "key", 32)[1])
        return cls(trusted, allow, secret)

    def check(self, record: StepRecord, signatures: Mapping[str, bytes]) -> str | None:
        """None if acceptable, else why not (for the refusal report)."""
        bad: list[str] = []
        for name, signature in sorted(signatures.items()):
            public = self.trusted.get(name)
            if public is None:
                continue
            try:
                _crypto().Ed25519PublicKey.from_public_bytes(public).verify(
                    signature, message(record)
                )
                return None
            except Exception:  # InvalidSignature, malformed signature bytes
                bad.append(name)
        if self.allow_unsigned:
            return None
        if bad:
            return f"its signature by {', '.join(bad)} does not verify (a forged record)"
        others = sorted(set(signatures) - set(self.trusted))
        if others:
            return (
                f"signed only by untrusted keys ({', '.join(others)}); "
                "add the cache's key with --trusted-key NAME:KEY"
            )
        return "it is not signed (pass --allow-unsigned-cache to use unsigned records)"


def signature_ref(name: str, key: str) -> bytes:
    return SIGNATURES_PREFIX + name.encode() + b"/" + key.encode()


def signature_refs(remote: Mapping[bytes, Any], key: str) -> dict[str, Any]:
    """Signer name -> object id of the signatures of step *key* a remote has."""
    tail = b"/" + key.encode()
    out = {}
    for ref, sha in remote.items():
        if ref.startswith(SIGNATURES_PREFIX) and ref.endswith(tail):
            name = ref[len(SIGNATURES_PREFIX) : -len(tail)].decode(errors="replace")
            if _NAME.fullmatch(name):
                out[name] = sha
    return out


def read_signature(repo: Any, commit_id: Any) -> bytes | None:
    """The raw signature in a signature commit, or None if malformed or absent."""
    try:
        commit = repo.object_store[commit_id]
        tree = repo.object_store[commit.tree]
        _, blob_id = tree[b"signature"]
        data: bytes = repo.object_store[blob_id].as_raw_string()
        return base64.b64decode(data.strip(), validate=True)
    except Exception:  # missing, wrong type, not base64: no signature
        return None


def signature_objects(signature: bytes) -> list[Any]:
    """The blob, tree and commit (fixed metadata) holding one signature."""
    from dulwich.objects import Blob, Commit, Tree

    blob = Blob.from_string(base64.b64encode(signature) + b"\n")
    tree = Tree()
    tree.add(b"signature", 0o100644, blob.id)
    commit = Commit()
    commit.tree = tree.id
    commit.author = commit.committer = _IDENTITY
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"signature\n"
    return [blob, tree, commit]


def push_signatures(
    store: Any, client: Any, path: str, records: Sequence[StepRecord], secret: SecretKey
) -> int:
    """Sign *records* and send their signature commits to the remote; returns how many."""
    from dulwich.pack import full_unpacked_object

    objects: dict[Any, Any] = {}
    refs: dict[bytes, Any] = {}
    for record in records:
        made = signature_objects(secret.sign(record))
        for obj in made:
            objects[obj.id] = obj
        refs[signature_ref(secret.name, record.key)] = made[-1].id
    if not refs:
        return 0
    sent = 0

    def update_refs(remote: dict[Any, Any]) -> dict[Any, Any]:
        nonlocal sent
        new = {r: s for r, s in refs.items() if remote.get(r) != s}
        sent = len(new)
        return new

    def generate_pack_data(have: Any, want: Any, *args: Any, **kw: Any) -> Any:
        known = set(have)
        wanted = [obj for oid, obj in objects.items() if oid not in known]
        return len(wanted), iter([full_unpacked_object(o) for o in wanted])

    try:
        result = client.send_pack(path, update_refs, generate_pack_data)
    except Exception as exc:
        from reprobuild.redact import redact

        raise StoreError(
            f"cannot send the records' signatures to the cache: {redact(str(exc))}"
        ) from exc
    failed = {r: m for r, m in (getattr(result, "ref_status", None) or {}).items() if m}
    if failed:
        raise StoreError(f"the cache refused {len(failed)} signature(s): {failed}")
    return sent
