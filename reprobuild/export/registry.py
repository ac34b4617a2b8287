"""Pushing an OCI layout to a registry without changing the digest users pin.

The copy is done by ``skopeo copy --all --preserve-digests``: skopeo then
refuses any change to a manifest (a recompressed layer, a converted media
type) instead of silently pushing an image with another digest. The push is
confirmed by fetching the manifest back *by digest* and comparing its bytes
with the ones in the layout, so what a ``FROM name@sha256:...`` resolves to
is known to be exactly what was built.

skopeo gets its own signature policy (accept anything): the only image it
reads is the local layout just written, and the host's
``/etc/containers/policy.json`` (which may be missing or restrictive) must
not change what a push does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from reprobuild.errors import EXIT_CHECK_FAILED, ReprobuildError
from reprobuild.export.oci import INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, REF_NAME

__all__ = ["PushMismatch", "RegistryError", "fetch_manifest", "push_layout", "registry_host"]

_TIMEOUT: Final = 600
_POLICY: Final = '{"default":[{"type":"insecureAcceptAnything"}]}'


class RegistryError(ReprobuildError):
    """Pushing to or reading from a registry failed."""


class PushMismatch(RegistryError):
    """The registry serves other bytes than the layout holds for the pushed digest."""

    exit_code = EXIT_CHECK_FAILED


def _skopeo() -> str:
    path = shutil.which("skopeo")
    if path is None:
        raise RegistryError(
            "skopeo is not installed; it is needed to push OCI images to a registry",
            hint="install the Debian package 'skopeo' (apt-get install skopeo)",
        )
    return path


def registry_host(reference: str) -> str:
    """The ``HOST[:PORT]`` part of ``REGISTRY/NAME[:TAG]``."""
    host, slash, rest = reference.partition("/")
    if not slash or not rest or not ("." in host or ":" in host or host == "localhost"):
        raise RegistryError(
            f"reference {reference!r} does not name a registry",
            hint="write it as REGISTRY/NAME:TAG, e.g. 127.0.0.1:5000/app:1",
        )
    return host


def _is_loopback(host: str) -> bool:
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":")[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def skopeo_tls_verify(host: str, tls_verify: bool) -> bool:
    """TLS is verified unless asked not to, or the registry is on loopback."""
    return tls_verify and not _is_loopback(host)


def _run(args: list[str], what: str) -> bytes:
    try:
        done = subprocess.run(args, capture_output=True, timeout=_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise RegistryError(f"{what}: skopeo did not finish within {_TIMEOUT} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip() or f"exit {done.returncode}"
        raise RegistryError(f"{what}: {message}")
    return done.stdout


def _layout_target(layout_dir: Path, source_ref: str | None) -> tuple[str, str, bytes]:
    """(transport name, digest, expected bytes) of the image the push copies."""
    try:
        index = json.loads((layout_dir / "index.json").read_bytes())
        # Artifacts about an image (its referrers) are pushed after it, by digest.
        manifests = [m for m in index["manifests"] if "artifactType" not in m]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"{layout_dir} is not a readable OCI image layout: {exc}") from exc
    if source_ref is None:
        if len(manifests) != 1:
            raise RegistryError(
                f"{layout_dir} holds {len(manifests)} images; say which one to push"
            )
        chosen = manifests[0]
    else:
        found = [m for m in manifests if m.get("annotations", {}).get(REF_NAME) == source_ref]
        if len(found) != 1:
            raise RegistryError(f"{layout_dir} has no single image tagged {source_ref!r}")
        chosen = found[0]
    if chosen.get("mediaType") not in (MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE):
        raise RegistryError(f"{layout_dir}: unsupported media type {chosen.get('mediaType')!r}")
    digest = str(chosen["digest"])
    algorithm, _, hexdigest = digest.partition(":")
    data = (layout_dir / "blobs" / algorithm / hexdigest).read_bytes()
    if algorithm != "sha256" or hashlib.sha256(data).hexdigest() != hexdigest:
        raise RegistryError(f"{layout_dir}: blob {digest} is missing or damaged")
    return f"oci:{layout_dir}", digest, data


def _image_only(layout_dir: Path, digest: str, tmp: Path) -> Path:
    """A layout of the one image *digest* (skopeo cannot pick it among referrers
    by digest): its own index.json beside the original blobs."""
    index = json.loads((layout_dir / "index.json").read_bytes())
    chosen = [m for m in index["manifests"] if m.get("digest") == digest][:1]
    view = tmp / "image"
    view.mkdir()
    (view / "blobs").symlink_to(layout_dir / "blobs")
    shutil.copyfile(layout_dir / "oci-layout", view / "oci-layout")
    (view / "index.json").write_text(json.dumps({**index, "manifests": chosen}))
    return view


def fetch_manifest(reference: str, digest: str, *, tls_verify: bool = True) -> bytes:
    """The raw manifest (or index) bytes ``REGISTRY/NAME@DIGEST`` serves."""
    repository = reference.rsplit("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: repository.rfind(":")]
    verify = tls_verify and not _is_loopback(registry_host(reference))
    return _run(
        [
            _skopeo(),
            "inspect",
            "--raw",
            f"--tls-verify={'true' if verify else 'false'}",
            f"docker://{repository}@{digest}",
        ],
        f"fetching {repository}@{digest}",
    )


def push_layout(
    layout_dir: Path,
    reference: str,
    *,
    tls_verify: bool = True,
    source_ref: str | None = None,
) -> str:
    """Push the image in *layout_dir* to ``REGISTRY/NAME:TAG``; return its digest.

    *source_ref* selects an image of the layout by its ref name (needed only
    when the layout holds several). TLS is verified unless *tls_verify* is
    false or the registry is on a loopback address (as Docker treats
    127.0.0.0/8: the traffic never leaves the machine). Raises
    :class:`PushMismatch` if the registry serves other bytes for the digest.
    """
    layout_dir = Path(layout_dir).resolve()
    host = registry_host(reference)
    skopeo = _skopeo()
    source, digest, expected = _layout_target(layout_dir, source_ref)
    verify = tls_verify and not _is_loopback(host)
    with tempfile.TemporaryDirectory(prefix="reprobuild-skopeo-") as tmp:
        source = f"oci:{_image_only(layout_dir, digest, Path(tmp))}"
        policy = Path(tmp) / "policy.json"
        policy.write_text(_POLICY)
        _run(
            [
                skopeo,
                "--policy",
                str(policy),
                "copy",
                "--all",
                "--preserve-digests",
                "--quiet",
                f"--dest-tls-verify={'true' if verify else 'false'}",
                source,
                f"docker://{reference}",
            ],
            f"pushing {layout_dir} to {reference}",
        )
    served = fetch_manifest(reference, digest, tls_verify=tls_verify)
    if served != expected:
        raise PushMismatch(
            f"{reference}: the registry serves {len(served)} bytes for {digest}, "
            f"not the {len(expected)} bytes of the layout",
            hint="the registry or a proxy rewrote the manifest; the pinned digest would not match",
        )
    return digest
