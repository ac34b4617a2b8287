"""What ``reprobuild verify`` is pointed at, opened as a file-system tree.

A target is a root file system tarball (plain or compressed), an OCI image
layout directory, an ``oci-archive:FILE`` or ``docker-archive:FILE``, or a
registry reference ``REGISTRY/NAME[:TAG|@sha256:...]``. Archives and
registries are copied by skopeo into a temporary OCI layout first. An
image's layers are flattened as a container runtime does it: in order, a
``.wh.NAME`` entry deletes ``NAME`` (and what is below it), ``.wh..wh..opq``
empties its directory of what lower layers put there.

The result is a map from path (``usr/bin/jq``, no leading ``./``) to a
:class:`Member` (type, mode, owner, mtime, link target, content sha256) and
the means to read a file's bytes again for a report.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final, cast

import zstandard

from reprobuild.errors import ReprobuildError, UsageError
from reprobuild.tree import TarEntry, TarReader

__all__ = ["Member", "Target", "TargetError", "open_target"]

_CHUNK: Final = 1 << 20
MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
_TYPES: Final = {
    b"0": "file",
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "char",
    b"4": "block",
    b"5": "dir",
    b"6": "fifo",
}


class TargetError(UsageError):
    """The target is not something verify can read (exit 2)."""


@dataclass(frozen=True)
class Member:
    """One path of a tree as an archive records it."""

    path: str
    type: str
    mode: int
    uid: int
    gid: int
    mtime: int
    size: int = 0
    target: str = ""  # symlink or hard link target
    sha256: str | None = None
    device: tuple[int, int] | None = None

    def fields(self) -> dict[str, object]:
        """The attributes compared (everything but where the bytes live)."""
        return {
            "type": self.type,
            "mode": f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "mtime": self.mtime,
            "size": self.size,
            "target": self.target,
            "sha256": self.sha256,
            "device": list(self.device) if self.device else None,
        }


@dataclass
class Target:
    """An opened target: its tree, how to reach its bytes, and what it says about itself."""

    spec: str
    kind: str  # "tarball" or "oci"
    digest: str  # sha256:... of the tarball file, or of the image manifest
    members: dict[str, Member]
    tar_digest: str | None = None  # the uncompressed tar (tarballs; single-layer images)
    layout: Path | None = None  # the OCI layout (kept for referrers)
    remote: bool = False  # fetched from a registry (its referrers are there)
    manifest: dict[str, object] = field(default_factory=dict)
    _layers: list[Path] = field(default_factory=list)  # tar files, lowest first
    _origin: dict[str, int] = field(default_factory=dict)  # path -> layer index
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def annotations(self) -> dict[str, str]:
        value = self.manifest.get("annotations") or {}
        return {str(k): str(v) for k, v in cast(dict[str, object], value).items()}

    def read(self, path: str) -> bytes:
        """The bytes of a regular file of the tree."""
        layer = self._layers[self._origin.get(path, 0)]
        with _open_tar(layer) as stream:
            for entry in TarReader(stream):
                if _normal(entry.name) == path and entry.type == b"0":
                    return entry.read()
        raise TargetError(f"{self.spec}: {path} is not a file of the tree")

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _normal(name: bytes) -> str:
    text = name.decode("utf-8", "surrogateescape")
    while text.startswith("./"):
        text = text[2:]
    text = text.lstrip("/").rstrip("/")
    return text if text not in ("", ".") else "."


class _Hashing:
    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.hash = hashlib.sha256()

    def read(self, n: int = -1, /) -> bytes:
        data = self.stream.read(n)
        self.hash.update(data)
        return data


def _open_tar(path: Path) -> BinaryIO:
    """A tar file, decompressed by its magic bytes (gzip, xz, zstd, bzip2, none)."""
    raw = path.open("rb")
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw))
    if head.startswith(b"\xfd7zXZ\x00"):
        return cast(BinaryIO, lzma.LZMAFile(raw))
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    if head.startswith(b"BZh"):
        return cast(BinaryIO, bz2.BZ2File(raw))
    return raw


def _member(path: str, entry: TarEntry, sha: str | None) -> Member:
    kind = _TYPES.get(entry.type)
    if kind is None:
        raise TargetError(f"{path}: unsupported tar member type {entry.type!r}")
    target = entry.linkname.decode("utf-8", "surrogateescape")
    if kind == "hardlink":
        target = _normal(entry.linkname)
    return Member(
        path=path,
        type=kind,
        mode=entry.mode,
        uid=entry.uid,
        gid=entry.gid,
        mtime=entry.mtime,
        size=entry.size if kind == "file" else 0,
        target=target,
        sha256=sha,
        device=(entry.devmajor, entry.devminor) if kind in ("char", "block") else None,
    )


def _file_sha(entry: TarEntry) -> str:
    h = hashlib.sha256()
    while chunk := entry.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _entries(path: Path) -> Iterator[tuple[str, TarEntry]]:
    with _open_tar(path) as stream:
        for entry in TarReader(stream):
            yield _normal(entry.name), entry


def read_tarball(path: Path) -> tuple[dict[str, Member], str]:
    """The members of a tarball and the sha256 of its uncompressed tar."""
    members: dict[str, Member] = {}
    with _open_tar(path) as stream:
        hashing = _Hashing(stream)
        for entry in TarReader(cast(BinaryIO, hashing)):
            name = _normal(entry.name)
            sha = _file_sha(entry) if entry.type == b"0" else None
            members[name] = _member(name, entry, sha)
        while hashing.read(_CHUNK):
            pass
    _resolve_hardlinks(members)
    return members, "sha256:" + hashing.hash.hexdigest()


def _resolve_hardlinks(members: dict[str, Member]) -> None:
    """A hard link compares as the file it links to (which path comes first
    in an archive is an accident of order)."""
    for path, m in list(members.items()):
        if m.type == "hardlink" and m.target in members:
            first = members[m.target]
            members[path] = Member(
                path, "file", first.mode, first.uid, first.gid, first.mtime,
                first.size, "", first.sha256,
            )  # fmt: skip


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _is_tar(path: Path) -> bool:
    try:
        with _open_tar(path) as stream:
            block = stream.read(512)
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError):
        return False
    if len(block) != 512:
        return False
    try:
        stored = int(block[148:156].strip(b" \0") or b"x", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


# --------------------------------------------------------------------------
# OCI
# --------------------------------------------------------------------------


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    if (
        algorithm != "sha256"
        or len(hexdigest) != 64
        or not all(c in "0123456789abcdef" for c in hexdigest)
    ):
        raise TargetError(f"{layout}: unsupported digest {digest!r}")
    return layout / "blobs" / "sha256" / hexdigest


def _json_blob(layout: Path, digest: str) -> dict[str, object]:
    path = _blob(layout, digest)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TargetError(f"{layout}: blob {digest} is missing ({exc.strerror})") from None
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise TargetError(f"{layout}: blob {digest} is damaged (its sha256 differs)")
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise TargetError(f"{layout}: blob {digest} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TargetError(f"{layout}: blob {digest} is not a JSON object")
    return value


def image_manifest(layout: Path) -> tuple[str, dict[str, object]]:
    """(digest, manifest) of the image in an OCI layout: the one image manifest
    that is not an artifact about another (no ``subject``), through an index
    for this machine's platform (linux/amd64) if need be."""
    try:
        index = json.loads((layout / "index.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise TargetError(f"{layout} is not an OCI image layout (index.json: {exc})") from None
    candidates = [d for d in index.get("manifests", []) if isinstance(d, dict)]
    images = [
        d for d in candidates if d.get("mediaType") in (MANIFEST, INDEX, DOCKER_MANIFEST)
        and "subject" not in _json_blob(layout, str(d.get("digest")))
    ]  # fmt: skip
    if not images:
        raise TargetError(f"{layout}: the layout holds no image")
    if len(images) > 1:
        raise TargetError(
            f"{layout}: the layout holds {len(images)} images",
            hint="verify one image at a time (oci:DIR:TAG is not supported; copy it alone)",
        )
    desc = images[0]
    digest = str(desc["digest"])
    manifest = _json_blob(layout, digest)
    if desc.get("mediaType") == INDEX or manifest.get("mediaType") == INDEX:
        entries = [m for m in cast(list[dict[str, object]], manifest.get("manifests", []))]
        chosen = [
            m for m in entries
            if cast(dict[str, str], m.get("platform") or {}).get("architecture") == "amd64"
        ] or entries  # fmt: skip
        if not chosen:
            raise TargetError(f"{layout}: the image index is empty")
        digest = str(chosen[0]["digest"])
        manifest = _json_blob(layout, digest)
    return digest, manifest


def open_layout(spec: str, layout: Path, tmp: tempfile.TemporaryDirectory[str] | None) -> Target:
    digest, manifest = image_manifest(layout)
    layers = [
        _blob(layout, str(cast(dict[str, object], d)["digest"]))
        for d in cast(list[object], manifest.get("layers", []))
    ]
    members: dict[str, Member] = {}
    origin: dict[str, int] = {}
    tar_digest = None
    for i, layer in enumerate(layers):
        if not layer.exists():
            raise TargetError(f"{layout}: layer {layer.name} is missing")
        hashing_path = layer
        with _open_tar(hashing_path) as stream:
            hashing = _Hashing(stream)
            for entry in TarReader(cast(BinaryIO, hashing)):
                name = _normal(entry.name)
                base = name.rsplit("/", 1)[-1]
                parent = name.rsplit("/", 1)[0] if "/" in name else "."
                if base == ".wh..wh..opq":
                    prefix = "" if parent == "." else parent + "/"
                    for p in [p for p in members if p.startswith(prefix) and p != parent]:
                        if origin.get(p, i) < i:
                            del members[p]
                    continue
                if base.startswith(".wh."):
                    gone = (parent + "/" if parent != "." else "") + base[4:]
                    for p in [p for p in members if p == gone or p.startswith(gone + "/")]:
                        del members[p]
                    continue
                old = members.get(name)
                if old is not None and old.type == "dir" and entry.type != b"5":
                    for p in [p for p in members if p.startswith(name + "/")]:
                        del members[p]
                sha = _file_sha(entry) if entry.type == b"0" else None
                members[name] = _member(name, entry, sha)
                origin[name] = i
            while hashing.read(_CHUNK):
                pass
        if len(layers) == 1:
            tar_digest = "sha256:" + hashing.hash.hexdigest()
    _resolve_hardlinks(members)
    return Target(
        spec=spec,
        kind="oci",
        digest=digest,
        members=members,
        tar_digest=tar_digest,
        layout=layout,
        manifest=manifest,
        _layers=layers,
        _origin=origin,
        _tmp=tmp,
    )


def _skopeo_copy(source: str, dest: Path, *, tls_verify: bool) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise ReprobuildError(
            f"reading {source} needs skopeo",
            hint="install the Debian package 'skopeo' (apt-get install skopeo)",
        )
    policy = dest.parent / "policy.json"
    policy.write_text('{"default":[{"type":"insecureAcceptAnything"}]}')
    args = [skopeo, "--policy", str(policy), "copy", "--quiet"]
    if not source.startswith("docker-archive:"):
        # A docker-archive's manifest must be converted to OCI: no digest survives it.
        args.append("--preserve-digests")
    if source.startswith("docker://"):
        from reprobuild.export.registry import registry_host, skopeo_tls_verify

        verify = skopeo_tls_verify(registry_host(source[len("docker://") :]), tls_verify)
        args.append(f"--src-tls-verify={'true' if verify else 'false'}")
    args += [source, f"oci:{dest}"]
    try:
        done = subprocess.run(args, capture_output=True, timeout=1800, check=False)
    except subprocess.TimeoutExpired:
        raise ReprobuildError(f"skopeo did not copy {source} within 30 minutes") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise TargetError(f"skopeo could not read {source}: {message or done.returncode}")


def _unpack_oci_archive(archive: Path, dest: Path) -> bool:
    """An oci-archive is a tar of a whole layout (referrers too): unpacked
    safely, blobs checked as they are read. False if it is not one."""
    import tarfile

    try:
        with tarfile.open(archive) as t:
            names = set(t.getnames())
            if not {"oci-layout", "index.json"} <= {n.removeprefix("./") for n in names}:
                return False
            from reprobuild.tarextract import extract_all

            extract_all(t, dest)
    except (tarfile.TarError, OSError):
        return False
    return True


def open_target(spec: str, *, tls_verify: bool = True) -> Target:
    """Open TARGET for comparison (see the module docstring for what it may be)."""
    path = Path(spec)
    if spec.startswith(("oci-archive:", "docker-archive:")):
        kind, _, file = spec.partition(":")
        if not Path(file).is_file():
            raise TargetError(f"{spec}: {file} is not a file")
        tmp = tempfile.TemporaryDirectory(prefix="reprobuild-verify-")
        layout = Path(tmp.name) / "layout"
        try:
            if kind == "oci-archive" and _unpack_oci_archive(Path(file), layout):
                return open_layout(spec, layout, tmp)  # referrers included
            _skopeo_copy(f"{kind}:{Path(file).resolve()}", layout, tls_verify=tls_verify)
            return open_layout(spec, layout, tmp)
        except BaseException:
            tmp.cleanup()
            raise
    if path.is_dir():
        return open_layout(spec, path, None)
    if path.is_file():
        if not _is_tar(path):
            raise TargetError(
                f"{spec} is not a tarball, an OCI layout or an image archive",
                hint="verify takes rootfs.tar[.gz|.xz|.zst], an OCI layout directory, "
                "oci-archive:FILE, docker-archive:FILE or REGISTRY/NAME@sha256:...",
            )
        members, tar_digest = read_tarball(path)
        return Target(
            spec=spec,
            kind="tarball",
            digest=_sha256_file(path),
            members=members,
            tar_digest=tar_digest,
            _layers=[path],
        )
    if "/" in spec and not spec.startswith(("/", ".")):
        from reprobuild.export.registry import registry_host

        registry_host(spec.split("@", 1)[0])  # refuses what is not REGISTRY/NAME
        tmp = tempfile.TemporaryDirectory(prefix="reprobuild-verify-")
        layout = Path(tmp.name) / "layout"
        try:
            _skopeo_copy(f"docker://{spec}", layout, tls_verify=tls_verify)
            target = open_layout(spec, layout, tmp)
            target.remote = True
            return target
        except BaseException:
            tmp.cleanup()
            raise
    raise TargetError(
        f"{spec}: no such file, directory or registry reference",
        hint="verify takes a rootfs tarball, an OCI layout directory, oci-archive:FILE, "
        "docker-archive:FILE or REGISTRY/NAME@sha256:...",
    )
