"""Format 1 -> 2: large whole content objects become chunks plus a manifest.

Format 1 kept every content object whole in ``lfs/objects``. Format 2 keeps
those over ``SMALL_MAX`` as chunks (see content.py). Records, refs and
pointers are the same in both formats (a pointer names the content's sha256,
however it is kept), so no build ref, lockfile or output digest changes.

Readers need no migration (a whole object is read as before, whatever its
size); the first write to a format-1 store, or ``store migrate``, converts it.
Each object is converted crash-safely: its manifest is published (chunks
durable first) before the whole file is removed, so a kill at any point
leaves every object readable one way or the other; the format file says 2
only once all are done, so an interrupted migration resumes at the next write.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reprobuild.errors import StoreError
from reprobuild.store._fs import atomic_write_bytes
from reprobuild.store.ingest import chunk_file
from reprobuild.store.manifest import Manifest

if TYPE_CHECKING:
    from reprobuild.store.core import Store

STORE_FORMAT = "2"
"""The store's layout version, in ``reprobuild/format`` (1: no chunks; 2: chunked)."""


@dataclass(frozen=True)
class MigrateReport:
    """What ``store migrate`` converted."""

    from_format: str
    to_format: str
    objects: int  # whole objects turned into chunks
    bytes_before: int
    bytes_after: int  # on disk: manifests plus the chunks they added


def read_format(store: Store) -> str:
    try:
        return (store._meta / "format").read_text().strip()
    except FileNotFoundError:
        return ""


def migrate(store: Store) -> MigrateReport:
    """Convert a format-1 store in place (a no-op on a format-2 store)."""
    before_format = read_format(store) or STORE_FORMAT
    if before_format not in ("1", STORE_FORMAT):
        raise StoreError(
            f"store {store.path} has format {before_format!r}, newer than this reprobuild knows",
            hint="use a newer reprobuild with this store",
        )
    content = store.content
    count = before = 0
    disk_before = _du(content.chunks.chunks) + _du(content.chunks.manifests)
    for name, path in list(content.iter_objects()):
        try:
            size = path.stat().st_size
            if size <= content.small_max or content.path(name) != path:
                continue
        except (FileNotFoundError, StoreError):
            continue
        with content._publish_lock():
            if not path.is_file():
                continue
            segments, sha, got = chunk_file(content.chunks, path)
            if sha != name or got != size:
                continue  # a damaged object stays whole for verify to report
            content.chunks.put_manifest(Manifest(sha, got, segments))
            os.unlink(path)
        count += 1
        before += size
    after = _du(content.chunks.chunks) + _du(content.chunks.manifests) - disk_before
    if before_format != STORE_FORMAT:
        atomic_write_bytes(
            store._meta / "format", (STORE_FORMAT + "\n").encode(), store._tmp, mode=0o644
        )
    return MigrateReport(before_format, STORE_FORMAT, count, before, after)


def _du(top: os.PathLike[str]) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(top):
        for f in files:
            try:
                total += os.stat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                continue
    return total
