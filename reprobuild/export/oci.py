"""OCI images from canonical tars, identical byte for byte on every run.

Users pin an image by its manifest digest (``FROM image@sha256:...``), so
every byte that feeds that digest is fixed here rather than left to a tool:

* **JSON** blobs (config, manifest, image index, ``index.json``) are
  canonical: keys sorted, no insignificant whitespace, UTF-8 (not ``\\u``
  escapes). No field carries a clock value but ``created`` (from the epoch,
  RFC 3339 UTC to the second) and the history entries' ``created``.
* **Layers** are the canonical tars themselves (the first) and
  :func:`diff_layer` changesets between consecutive trees (the others), so a
  layer's DiffID depends on the trees only. They are compressed by
  :func:`reprobuild.export.tar.export_tarball` with its pinned settings
  (gzip in parallel 1 MiB blocks at level 6, pigz's scheme, without name
  or time; zstd level 19 with content size and checksum).
* The **layout directory** gets fixed modes (0644 files, 0755 directories)
  and mtimes (the epoch) so copying or archiving it leaks no umask or clock;
  :func:`write_oci_archive` writes its ``oci-archive`` tar directly, with
  owner 0 and fixed modes, rather than from whatever the disk says.

Format: OCI image-spec v1.1 (image-layout.md, manifest.md, config.md,
layer.md, image-index.md). Whiteouts are explicit ``.wh.NAME`` files, placed
before their siblings (layer.md: "SHOULD generate layers using explicit
whiteout files", "whiteout files appear before sibling directory entries");
opaque whiteouts are never needed for a diff of two complete trees.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final, Literal

from reprobuild.canonical import canonical_bytes
from reprobuild.export.tar import ExportError, compress_file
from reprobuild.tree import (
    TarEntry,
    TarReader,
    Writable,
    member_parts,
    tar_header,
)

__all__ = [
    "INDEX_MEDIA_TYPE",
    "MANIFEST_MEDIA_TYPE",
    "DiffSummary",
    "ImageConfig",
    "LayerCompression",
    "OciError",
    "OciImage",
    "OciImageIndex",
    "diff_layer",
    "write_image_index",
    "write_oci_archive",
    "write_oci_layout",
]

LayerCompression = Literal["gzip", "zstd", "none"]

LAYOUT_VERSION: Final = "1.0.0"
INDEX_MEDIA_TYPE: Final = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE: Final = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE: Final = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_NAME: Final = "org.opencontainers.image.ref.name"
CREATED_BY: Final = "reprobuild"

WHITEOUT_PREFIX: Final = b".wh."
_BLOCK: Final = 512
_CHUNK: Final = 1 << 20
_FILE_MODE: Final = 0o644
_DIR_MODE: Final = 0o755
_TMP_DIR: Final = ".reprobuild-tmp"

# image-spec annotations.md: the grammar of org.opencontainers.image.ref.name.
_REF_RE: Final = re.compile(
    r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*"
)
_PORT_RE: Final = re.compile(r"[0-9]{1,5}(?:/(?:tcp|udp|sctp))?")

class OciError(ExportError):
    """An OCI image cannot be written from the trees and settings given."""


def rfc3339(epoch: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for *epoch* (whole seconds, UTC)."""
    if epoch < 0:
        raise OciError(f"epoch must not be negative (got {epoch})")
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------
# Image configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageConfig:
    """What a runtime needs besides the file system (config.md), plus the tag.

    ``env`` is rendered as a list of ``KEY=VALUE`` sorted by key, so the
    digest does not depend on the order a recipe happened to list them in.
    ``tag`` becomes the ``org.opencontainers.image.ref.name`` annotation of
    the image in ``index.json`` (the name ``oci:DIR:TAG`` and ``umoci
    --image DIR:TAG`` select by); ``annotations`` go on the manifest.
    """

    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: Sequence[str] = ()
    volumes: Sequence[str] = ()
    stop_signal: str | None = None
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    tag: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        for key in self.env:
            if not key or "=" in key or "\0" in key:
                raise OciError(f"bad environment variable name {key!r}")
        for port in self.exposed_ports:
            if not _PORT_RE.fullmatch(port) or not 0 < int(port.split("/")[0]) < 65536:
                raise OciError(f"bad exposed port {port!r} (PORT, PORT/tcp, PORT/udp, PORT/sctp)")
        for volume in self.volumes:
            if not volume.startswith("/"):
                raise OciError(f"volume {volume!r} is not an absolute path")
        if self.tag is not None and not _REF_RE.fullmatch(self.tag):
            raise OciError(
                f"tag {self.tag!r} is not a valid OCI reference name",
                hint="letters and digits joined by - . _ : @ + or --, components split by /",
            )
        if not self.architecture or not self.os:
            raise OciError("architecture and os must not be empty")
        for entrypoint in (self.entrypoint, self.cmd):
            if isinstance(entrypoint, str):
                raise OciError(f"entrypoint and cmd are lists of arguments, not {entrypoint!r}")

    def runtime_config(self) -> dict[str, object]:
        """The ``config`` object of the image configuration (only fields set)."""
        out: dict[str, object] = {}
        if self.user is not None:
            out["User"] = self.user
        if self.exposed_ports:
            out["ExposedPorts"] = {
                (p if "/" in p else p + "/tcp"): {} for p in sorted(self.exposed_ports)
            }
        if self.env:
            out["Env"] = [f"{k}={self.env[k]}" for k in sorted(self.env)]
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.volumes:
            out["Volumes"] = {v: {} for v in sorted(self.volumes)}
        if self.workdir is not None:
            out["WorkingDir"] = self.workdir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.stop_signal is not None:
            out["StopSignal"] = self.stop_signal
        return out


@dataclass(frozen=True)
class OciImage:
    """One image written into an OCI layout (all digests ``sha256:<hex>``)."""

    layout: Path
    manifest_digest: str
    manifest_size: int
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]
    index_digest: str
    architecture: str
    os: str
    variant: str | None = None
    tag: str | None = None

    @property
    def platform(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class OciImageIndex:
    """A multi-platform image index written into an OCI layout."""

    layout: Path
    digest: str
    size: int
    manifests: tuple[OciImage, ...]
    index_digest: str
    tag: str | None = None


# --------------------------------------------------------------------------
# Layer diffs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffSummary:
    """What a changeset layer holds: counts of paths, and its size and sha256."""

    added: int
    modified: int
    deleted: int
    size: int
    digest: str


@dataclass(frozen=True)
class _Member:
    kind: bytes
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int
    digest: bytes
    linkname: bytes
    device: tuple[int, int]
    xattrs: tuple[tuple[str, bytes], ...]
    link_root: tuple[bytes, ...] | None


@dataclass
class _Index:
    members: dict[tuple[bytes, ...], _Member]
    groups: dict[tuple[bytes, ...], frozenset[tuple[bytes, ...]]]

    def key(self, path: tuple[bytes, ...]) -> tuple[object, ...]:
        """Everything that, changed, makes *path* part of the changeset."""
        m = self.members[path]
        # A hard link is compared as the file it links to, plus its group.
        root = m.link_root if m.link_root is not None else path
        t = self.members[root]
        return (
            t.kind,
            t.mode,
            t.uid,
            t.gid,
            t.mtime,
            t.size,
            t.digest,
            t.linkname if t.kind == b"2" else b"",
            t.device,
            t.xattrs,
            self.groups.get(root),
        )


class _HashingReader:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.hash = hashlib.sha256()

    def read(self, n: int = -1, /) -> bytes:
        data = self.stream.read(n)
        self.hash.update(data)
        return data


class _HashingWriter:
    def __init__(self, out: Writable) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.out.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def _parts(tar: Path, entry: TarEntry) -> tuple[bytes, ...]:
    parts = member_parts(entry.name, context=f"layer tree {tar}")
    if any(p.startswith(WHITEOUT_PREFIX) for p in parts):
        raise OciError(
            f"{tar}: member {_show(entry.name)} has a name starting with '.wh.', "
            "which OCI layers reserve for whiteouts"
        )
    return parts


def _show(name: bytes) -> str:
    return repr(name.decode("utf-8", "backslashreplace"))


def _entries(tar: Path) -> Iterator[tuple[tuple[bytes, ...], TarEntry]]:
    with open(tar, "rb") as handle:
        for entry in TarReader(handle):
            yield _parts(tar, entry), entry


def _index(tar: Path) -> tuple[_Index, str]:
    """Metadata and content hash of every member, and the tar's own sha256."""
    members: dict[tuple[bytes, ...], _Member] = {}
    groups: dict[tuple[bytes, ...], set[tuple[bytes, ...]]] = {}
    context = f"layer tree {tar}"
    with open(tar, "rb") as raw:
        handle = _HashingReader(raw)
        for entry in TarReader(handle):  # type: ignore[arg-type]
            parts = _parts(tar, entry)
            if parts in members:
                raise OciError(f"{tar}: member {_show(entry.name)} appears twice")
            digest = b""
            link_root: tuple[bytes, ...] | None = None
            if entry.type == b"0":
                hasher = hashlib.sha256()
                while chunk := entry.read(_CHUNK):
                    hasher.update(chunk)
                digest = hasher.digest()
            elif entry.type == b"1":
                link_root = member_parts(entry.linkname, context=context)
                target = members.get(link_root)
                if target is None or target.kind != b"0":
                    raise OciError(
                        f"{tar}: hard link {_show(entry.name)} does not name an earlier file"
                    )
                groups.setdefault(link_root, {link_root}).add(parts)
            members[parts] = _Member(
                kind=entry.type,
                mode=entry.mode,
                uid=entry.uid,
                gid=entry.gid,
                mtime=entry.mtime,
                size=entry.size,
                digest=digest,
                linkname=entry.linkname,
                device=(entry.devmajor, entry.devminor),
                xattrs=tuple(entry.xattrs),
                link_root=link_root,
            )
        while handle.read(_CHUNK):
            pass
    frozen = {root: frozenset(paths) for root, paths in groups.items()}
    return _Index(members, frozen), "sha256:" + handle.hash.hexdigest()


_EMPTY: Final = _Index({}, {})


def _plan(
    lower: _Index, upper: _Index
) -> tuple[set[tuple[bytes, ...]], dict[tuple[bytes, ...], list[bytes]], int, int, int]:
    """Paths of *upper* to emit, whiteout names per directory, and counts."""
    emit: set[tuple[bytes, ...]] = set()
    added = modified = deleted = 0
    for path in upper.members:
        if path not in lower.members:
            added += 1
            emit.add(path)
        elif lower.key(path) != upper.key(path):
            modified += 1
            emit.add(path)
    # A hard link group travels whole: a layer cannot link to a lower layer's file.
    for path in list(emit):
        member = upper.members[path]
        root = member.link_root if member.kind == b"1" else path
        if root is not None and root in upper.groups:
            emit.update(upper.groups[root])
    whiteouts: dict[tuple[bytes, ...], list[bytes]] = {}
    for path in lower.members:
        if not path or path in upper.members:
            continue
        parent = upper.members.get(path[:-1])
        # Only the topmost deleted path: its parent survives as a directory.
        # A parent that became a non-directory replaces the whole subtree.
        if parent is not None and parent.kind == b"5":
            whiteouts.setdefault(path[:-1], []).append(path[-1])
            deleted += 1
    emit.update(whiteouts)  # a whiteout follows its directory's entry
    for path in list(emit):
        for depth in range(len(path)):
            emit.add(path[:depth])
    for names in whiteouts.values():
        names.sort()
    return emit, whiteouts, added, modified, deleted


def _whiteout_header(dir_name: bytes, name: bytes) -> bytes:
    return tar_header(
        dir_name + WHITEOUT_PREFIX + name,
        mode=0o644,
        uid=0,
        gid=0,
        size=0,
        mtime=0,
        typeflag=b"0",
    )


def _write_diff(
    upper_tar: Path,
    emit: set[tuple[bytes, ...]],
    whiteouts: Mapping[tuple[bytes, ...], Sequence[bytes]],
    out: _HashingWriter,
) -> None:
    for parts, entry in _entries(upper_tar):
        if parts not in emit:
            continue
        out.write(
            tar_header(
                entry.name,
                mode=entry.mode,
                uid=entry.uid,
                gid=entry.gid,
                size=entry.size if entry.type == b"0" else 0,
                mtime=entry.mtime,
                typeflag=entry.type,
                linkname=entry.linkname,
                devmajor=entry.devmajor,
                devminor=entry.devminor,
                xattrs=entry.xattrs,
            )
        )
        if entry.type == b"0":
            while chunk := entry.read(_CHUNK):
                out.write(chunk)
            out.write(b"\0" * (-entry.size % _BLOCK))
        if entry.type == b"5":
            for name in whiteouts.get(parts, ()):
                out.write(_whiteout_header(entry.name, name))
    out.write(b"\0" * (2 * _BLOCK))
    out.write(b"\0" * (-out.size % (20 * _BLOCK)))


def diff_layer(lower_tar: Path | None, upper_tar: Path, out: Writable) -> DiffSummary:
    """Write the OCI changeset that turns tree *lower_tar* into *upper_tar*.

    Both are canonical tars (:mod:`reprobuild.tree`); ``None`` is the empty
    tree, for which the output is the upper tar byte for byte. Members are
    compared by path, type, mode, owner, mtime, size, content sha256, link
    target, device numbers, xattrs and hard-link group. Added and changed
    members are written as in *upper_tar* (same order, same headers), with
    every ancestor directory, so a consumer never creates a parent with
    default attributes; a hard-link group is written whole. Each deleted
    path whose parent survives gets an explicit whiteout ``.wh.NAME``,
    written right after the parent directory and so before its siblings.
    """
    lower = _EMPTY if lower_tar is None else _index(lower_tar)[0]
    upper, _ = _index(upper_tar)
    return _diff_from_indexes(lower, upper, upper_tar, out)


def _diff_from_indexes(lower: _Index, upper: _Index, upper_tar: Path, out: Writable) -> DiffSummary:
    emit, whiteouts, added, modified, deleted = _plan(lower, upper)
    writer = _HashingWriter(out)
    _write_diff(upper_tar, emit, whiteouts, writer)
    return DiffSummary(added, modified, deleted, writer.size, "sha256:" + writer.hash.hexdigest())


# --------------------------------------------------------------------------
# The layout directory
# --------------------------------------------------------------------------


def _descriptor(media_type: str, digest: str, size: int, **extra: object) -> dict[str, object]:
    out: dict[str, object] = {"mediaType": media_type, "digest": digest, "size": size}
    out.update({k: v for k, v in extra.items() if v})
    return out


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algorithm / hexdigest


def _put_bytes(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = _blob_path(layout, digest)
    if not path.exists():
        _write_file(path, data)
    return digest, len(data)


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)


def _put_file(
    layout: Path, source: Path, compression: LayerCompression
) -> tuple[str, int, str]:
    """Compress *source* into a blob: (blob digest, blob size, digest of *source*)."""
    staging = layout / _TMP_DIR / "blob"
    digest, source_digest = compress_file(source, staging, compression)
    size = staging.stat().st_size
    os.chmod(staging, _FILE_MODE)
    os.replace(staging, _blob_path(layout, digest))
    return digest, size, source_digest


def _check_names(tar: Path) -> None:
    """What :func:`_index` refuses, for a layer that needs no index (the only one)."""
    seen: dict[tuple[bytes, ...], bytes] = {}
    with open(tar, "rb") as handle:
        for entry in TarReader(handle):
            parts = _parts(tar, entry)
            if parts in seen:
                raise OciError(f"{tar}: member {_show(entry.name)} appears twice")
            seen[parts] = entry.type
            if entry.type == b"1":
                target = member_parts(entry.linkname, context=f"layer tree {tar}")
                if seen.get(target) != b"0":
                    raise OciError(
                        f"{tar}: hard link {_show(entry.name)} does not name an earlier file"
                    )


def _prepare(dest_dir: Path) -> None:
    if dest_dir.exists() and (not dest_dir.is_dir() or any(dest_dir.iterdir())):
        raise OciError(f"OCI layout directory {dest_dir} exists and is not empty")
    dest_dir.mkdir(parents=True, exist_ok=True)
    (dest_dir / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (dest_dir / _TMP_DIR).mkdir()


def _abandon(dest_dir: Path) -> None:
    """Empty *dest_dir* after a failure: a half-written layout must not look usable."""
    for child in dest_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _finish(dest_dir: Path, index: Mapping[str, object], epoch: int) -> str:
    """Write ``oci-layout`` and ``index.json``; fix modes and times of everything."""
    shutil.rmtree(dest_dir / _TMP_DIR, ignore_errors=True)
    _write_file(dest_dir / "oci-layout", canonical_bytes({"imageLayoutVersion": LAYOUT_VERSION}))
    data = canonical_bytes(index)
    _write_file(dest_dir / "index.json", data)
    for path in _walk(dest_dir):
        os.chmod(path, _DIR_MODE if path.is_dir() else _FILE_MODE)
        os.utime(path, (epoch, epoch))
    os.chmod(dest_dir, _DIR_MODE)
    os.utime(dest_dir, (epoch, epoch))
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    for child in sorted(root.iterdir(), key=lambda p: os.fsencode(p.name)):
        yield child
        if child.is_dir() and not child.is_symlink():
            yield from _walk(child)


def write_oci_layout(
    layers: Sequence[Path],
    config: ImageConfig,
    dest_dir: Path,
    *,
    compression: LayerCompression = "gzip",
    epoch: int,
) -> OciImage:
    """Write an OCI image layout of the trees *layers* (canonical tars, lowest first).

    Layer 0 is tree 0 itself; layer *i* is :func:`diff_layer` of tree *i-1*
    and tree *i*, so stacking the layers gives the last tree. *dest_dir*
    must be empty or absent. *epoch* gives ``created`` and the layout's
    file times. Returns the digests a user pins and pushes.
    """
    if compression not in LAYER_MEDIA_TYPES:
        raise OciError(f"unknown layer compression {compression!r} (gzip, zstd or none)")
    if not layers:
        raise OciError("an image needs at least one layer")
    config.validate()
    created = rfc3339(epoch)
    dest_dir = Path(dest_dir)
    _prepare(dest_dir)
    try:
        descriptors: list[dict[str, object]] = []
        diff_ids: list[str] = []
        previous: _Index | None = None
        for number, tar in enumerate(layers):
            if len(layers) == 1:  # no diff: only the names are checked; the DiffID
                _check_names(Path(tar))  # is hashed while the tar is compressed
                source, diff_id, upper = Path(tar), "", _EMPTY
            else:
                upper, tar_digest = _index(Path(tar))
                if previous is None:
                    source, diff_id = Path(tar), tar_digest
                else:
                    source = dest_dir / _TMP_DIR / f"layer-{number}.tar"
                    with open(source, "wb") as handle:
                        diff_id = _diff_from_indexes(previous, upper, Path(tar), handle).digest
            digest, size, source_digest = _put_file(dest_dir, source, compression)
            diff_id = diff_id or source_digest
            descriptors.append(_descriptor(LAYER_MEDIA_TYPES[compression], digest, size))
            diff_ids.append(diff_id)
            previous = upper
            if source.parent == dest_dir / _TMP_DIR:
                source.unlink()
        image_config: dict[str, object] = {
            "created": created,
            "architecture": config.architecture,
            "os": config.os,
            "config": config.runtime_config(),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": CREATED_BY} for _ in layers],
        }
        if config.variant:
            image_config["variant"] = config.variant
        config_digest, config_size = _put_bytes(dest_dir, canonical_bytes(image_config))
        manifest: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": _descriptor(CONFIG_MEDIA_TYPE, config_digest, config_size),
            "layers": descriptors,
        }
        if config.annotations:
            manifest["annotations"] = dict(config.annotations)
        manifest_digest, manifest_size = _put_bytes(dest_dir, canonical_bytes(manifest))
        platform = {"architecture": config.architecture, "os": config.os}
        if config.variant:
            platform["variant"] = config.variant
        entry = _descriptor(
            MANIFEST_MEDIA_TYPE,
            manifest_digest,
            manifest_size,
            platform=platform,
            annotations={REF_NAME: config.tag} if config.tag else None,
        )
        index_digest = _finish(
            dest_dir,
            {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [entry]},
            epoch,
        )
    except BaseException:
        _abandon(dest_dir)
        raise
    return OciImage(
        layout=dest_dir,
        manifest_digest=manifest_digest,
        manifest_size=manifest_size,
        config_digest=config_digest,
        layer_digests=tuple(str(d["digest"]) for d in descriptors),
        diff_ids=tuple(diff_ids),
        index_digest=index_digest,
        architecture=config.architecture,
        os=config.os,
        variant=config.variant,
        tag=config.tag,
    )


def _blobs_of(image: OciImage) -> Iterable[str]:
    manifest = json.loads(_blob_path(image.layout, image.manifest_digest).read_bytes())
    yield image.manifest_digest
    yield str(manifest["config"]["digest"])
    for layer in manifest["layers"]:
        yield str(layer["digest"])


def write_image_index(
    images: Sequence[OciImage],
    dest_dir: Path,
    *,
    tag: str | None = None,
    epoch: int,
    annotations: Mapping[str, str] | None = None,
) -> OciImageIndex:
    """Write a multi-platform image index of *images* into a new layout *dest_dir*.

    The blobs of every image are copied in (each once: layers shared by
    several images are stored once); the index blob lists one manifest per
    image with its platform, and ``index.json`` points at the index blob
    under *tag*. Two images for the same platform are refused: a runtime
    could not choose between them.
    """
    if not images:
        raise OciError("an image index needs at least one image")
    if tag is not None:
        ImageConfig(tag=tag).validate()
    platforms = [tuple(sorted(i.platform.items())) for i in images]
    if len(set(platforms)) != len(platforms):
        raise OciError("an image index cannot hold two images for the same platform")
    dest_dir = Path(dest_dir)
    _prepare(dest_dir)
    try:
        for image in images:
            for digest in _blobs_of(image):
                target = _blob_path(dest_dir, digest)
                if target.exists():
                    continue
                staging = dest_dir / _TMP_DIR / "blob"
                shutil.copyfile(_blob_path(image.layout, digest), staging)
                os.replace(staging, target)
        index: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": [
                _descriptor(
                    MANIFEST_MEDIA_TYPE, i.manifest_digest, i.manifest_size, platform=i.platform
                )
                for i in images
            ],
        }
        if annotations:
            index["annotations"] = dict(annotations)
        digest, size = _put_bytes(dest_dir, canonical_bytes(index))
        entry = _descriptor(
            INDEX_MEDIA_TYPE, digest, size, annotations={REF_NAME: tag} if tag else None
        )
        index_digest = _finish(
            dest_dir,
            {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [entry]},
            epoch,
        )
    except BaseException:
        _abandon(dest_dir)
        raise
    return OciImageIndex(
        layout=dest_dir,
        digest=digest,
        size=size,
        manifests=tuple(images),
        index_digest=index_digest,
        tag=tag,
    )


# --------------------------------------------------------------------------
# oci-archive
# --------------------------------------------------------------------------


def write_oci_archive(layout_dir: Path, dest_tar: Path, *, epoch: int = 0) -> str:
    """Write the ``oci-archive`` form of *layout_dir*; return its ``sha256:<hex>``.

    A plain tar of the layout (what ``skopeo``'s ``oci-archive:`` transport
    reads): names without ``./`` as skopeo writes them, sorted by bytes,
    owner 0, modes 0755/0644 and mtime *epoch* whatever the disk says, so
    the archive does not depend on who exported it or when.
    """
    layout_dir = Path(layout_dir)
    if not (layout_dir / "oci-layout").is_file() or not (layout_dir / "index.json").is_file():
        raise OciError(f"{layout_dir} is not an OCI image layout (no oci-layout or index.json)")
    tmp = dest_tar.with_name(dest_tar.name + ".partial")
    try:
        with open(tmp, "wb") as raw:
            out = _HashingWriter(raw)
            for path in _walk(layout_dir):
                name = os.fsencode(path.relative_to(layout_dir).as_posix())
                st = path.lstat()
                if stat.S_ISDIR(st.st_mode):
                    out.write(
                        tar_header(
                            name + b"/",
                            mode=_DIR_MODE,
                            uid=0,
                            gid=0,
                            size=0,
                            mtime=epoch,
                            typeflag=b"5",
                        )
                    )
                elif stat.S_ISREG(st.st_mode):
                    out.write(
                        tar_header(
                            name,
                            mode=_FILE_MODE,
                            uid=0,
                            gid=0,
                            size=st.st_size,
                            mtime=epoch,
                            typeflag=b"0",
                        )
                    )
                    copied = 0
                    with open(path, "rb") as handle:
                        while chunk := handle.read(_CHUNK):
                            out.write(chunk)
                            copied += len(chunk)
                    if copied != st.st_size:
                        raise OciError(f"{path} changed while being archived")
                    out.write(b"\0" * (-copied % _BLOCK))
                else:
                    raise OciError(f"{path}: an OCI layout holds only files and directories")
            out.write(b"\0" * (2 * _BLOCK))
            out.write(b"\0" * (-out.size % (20 * _BLOCK)))
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, dest_tar)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return "sha256:" + out.hash.hexdigest()
