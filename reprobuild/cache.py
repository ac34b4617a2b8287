"""A remote step cache: a git remote holding a store, consulted by step key.

A step key names everything that shapes a step's bytes, so a record found
under the same key elsewhere is as good as running the step here. Before a
build, the records of its step keys that the local store lacks are fetched
from the remote with the content they point to; every byte is re-hashed on
the way in (see transport.py), and an entry whose content does not match is
refused: its ref is not created, so the step simply runs. After the build,
``push`` sends the build's step records (never the build history, which is
per store) so a team or a CI fleet never builds the same step twice.

Any remote ``store push``/``pull`` accepts works: a path or ``file://`` URL of
a bare git repository or of another store, ``git://``, ``http(s)://``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reprobuild.cache_sign import (
    CachePolicy,
    push_signatures,
    read_signature,
    signature_ref,
    signature_refs,
)
from reprobuild.errors import IntegrityError, StoreError
from reprobuild.redact import redact
from reprobuild.store import Store, TransferReport
from reprobuild.store.history import STEPS_PREFIX
from reprobuild.store.records import Blob
from reprobuild.store.remotes import RemoteTimeout


@dataclass(frozen=True)
class CacheReport:
    """What one consultation of the remote cache brought in, and what it refused."""

    remote: str
    fetched: tuple[str, ...]  # step keys now recorded locally from the cache
    refused: tuple[tuple[str, str], ...]  # (step key, why)
    content_objects: int
    content_bytes: int


def fetch(
    store: Store,
    url: str,
    keys: Iterable[str],
    *,
    create: bool = False,
    policy: CachePolicy | None = None,
) -> CacheReport:
    """Bring in the records of ``keys`` the local store lacks and the remote has.

    ``create`` makes a missing local-path remote (an empty cache that the
    build will push to) instead of refusing it. With a *policy*, a record is
    used only if a key it trusts signed it (see cache_sign.py); its content
    is not even fetched otherwise.
    """
    from reprobuild.store import transport

    wanted = sorted({k for k in keys if store.lookup_step(k) is None})
    if not wanted:
        return CacheReport(redact(url), (), (), 0, 0)
    client, path = transport._client(url, create=create)
    try:
        remote_refs = transport._remote_refs(client, path, url)
    except StoreError as exc:
        raise StoreError(
            f"cannot consult the step cache {redact(url)}: {exc.message}",
            hint="check that the remote exists and is reachable, or build without --cache",
        ) from exc
    fetched: list[str] = []
    refused: list[tuple[str, str]] = []
    objects = size = 0
    with store._publishing():
        wants = {
            STEPS_PREFIX + k.encode(): remote_refs[STEPS_PREFIX + k.encode()]
            for k in wanted
            if STEPS_PREFIX + k.encode() in remote_refs
        }
        if policy is not None:  # the signatures of the wanted records come along
            for k in wanted:
                for name, sha_ in signature_refs(remote_refs, k).items():
                    wants[signature_ref(name, k)] = sha_
        try:
            malformed = transport.fetch_records(store, client, path, url, wants)
        except StoreError as exc:
            raise StoreError(
                f"cannot consult the step cache {redact(url)}: {exc.message}",
                hint="check that the remote exists and is reachable, or build without --cache",
            ) from exc
        for key in wanted:
            ref = STEPS_PREFIX + key.encode()
            sha = remote_refs.get(ref)
            if sha is None:
                continue
            if ref in malformed:
                refused.append((key, f"refused: {malformed[ref]}"))
                continue
            try:
                record = store._read_step(sha)
                if record.key != key:
                    raise IntegrityError(f"it holds the record of step {record.key}")
                if policy is not None:
                    signatures = {
                        name: sig
                        for name, sha_ in signature_refs(remote_refs, key).items()
                        if (sig := read_signature(store.repo, sha_)) is not None
                    }
                    problem = policy.check(record, signatures)
                    if problem is not None:
                        refused.append((key, f"refused: {problem}"))
                        continue
                _, pointers = store._reachable({ref: sha})
                needed = [b for b in pointers.values() if not store.has(b.sha256)]
                got, got_bytes = transport.fetch_content(
                    store, client, path, url, _sorted(needed), remote_refs
                )
            except RemoteTimeout:
                raise  # a silent remote stays silent: do not wait again for each step
            except (IntegrityError, StoreError, KeyError) as exc:
                refused.append((key, getattr(exc, "message", None) or f"incomplete ({exc})"))
                continue
            objects += len(got)
            size += got_bytes
            missing = [b.sha256 for b in needed if b.sha256 not in got]
            if missing:
                refused.append((key, f"the cache lacks its content sha256:{missing[0]}"))
                continue
            current = store._get_ref(ref)
            if store._set_ref(ref, current, sha):
                store._touch_stamp(key)
                fetched.append(key)
    return CacheReport(redact(url), tuple(fetched), tuple(refused), objects, size)


def push(
    store: Store,
    url: str,
    keys: Iterable[str],
    *,
    retry: bool = False,
    policy: CachePolicy | None = None,
) -> TransferReport:
    """Send the records of ``keys`` present here, with their content, to the cache.

    ``retry``: try once more after a refusal, for remotes several machines push
    to at once (another may have created the same content ref meanwhile; the
    second try sees it and sends only what is still missing). A *policy*
    with a secret key signs every record sent (see cache_sign.py).
    """
    from reprobuild.store import transport

    keys = list(keys)
    refs = {STEPS_PREFIX + k.encode() for k in keys}
    try:
        report = transport.push(store, url, only=refs)
    except StoreError:
        if not retry:
            raise
        report = transport.push(store, url, only=refs)
    if policy is not None and policy.secret is not None:
        records = [r for r in (store.lookup_step(k) for k in sorted(set(keys))) if r is not None]
        client, path = transport._client(url, create=False)
        push_signatures(store, client, path, records, policy.secret)
    return report


def _sorted(blobs: list[Blob]) -> list[Blob]:
    return sorted(blobs, key=lambda b: b.sha256)
