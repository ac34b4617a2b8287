"""The few calls of the OCI distribution API that skopeo does not make: referrers.

skopeo copies images; OCI 1.1 artifacts that point at an image (``subject``)
are pushed and found here: blobs (``POST`` then ``PUT`` uploads), manifests
by digest, and the referrers list, from ``GET /v2/NAME/referrers/DIGEST``
where the registry implements it, else from the fallback tag ``sha256-HEX``
(an image index, as OCI distribution-spec 1.1 defines for older registries
such as docker-registry 2.8). Anonymous bearer tokens are fetched when a
registry asks for them. Plain HTTP is used only for loopback registries.
Every blob and manifest read is checked against its digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Final

from reprobuild.export.registry import RegistryError, registry_host, skopeo_tls_verify

__all__ = ["Registry", "split_reference"]

_TIMEOUT: Final = 120
_MAX: Final = 256 << 20
INDEX: Final = "application/vnd.oci.image.index.v1+json"
MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
ACCEPT: Final = ", ".join(
    (
        INDEX,
        MANIFEST,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)


def split_reference(reference: str) -> tuple[str, str, str]:
    """``REGISTRY/NAME[:TAG|@DIGEST]`` -> (registry, repository, tag or digest)."""
    host = registry_host(reference)
    rest = reference[len(host) + 1 :]
    if "@" in rest:
        repository, ref = rest.split("@", 1)
    elif ":" in rest.rsplit("/", 1)[-1]:
        repository, ref = rest.rsplit(":", 1)
    else:
        repository, ref = rest, "latest"
    if not repository:
        raise RegistryError(f"reference {reference!r} names no repository")
    return host, repository, ref


@dataclass
class Registry:
    host: str
    repository: str
    tls_verify: bool = True
    _token: str | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        """https, except plain http to a loopback registry (as Docker allows)."""
        scheme = "http" if _loopback(self.host) else "https"
        return f"{scheme}://{self.host}/v2/{self.repository}"

    def _context(self) -> ssl.SSLContext | None:
        if self.tls_verify:
            return None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def _request(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(2):
            h = dict(headers or {})
            if self._token:
                h["Authorization"] = f"Bearer {self._token}"
            req = urllib.request.Request(url, data=data, method=method, headers=h)
            try:
                with urllib.request.urlopen(req, timeout=_TIMEOUT, context=self._context()) as resp:
                    return resp.status, dict(resp.headers.items()), resp.read(_MAX + 1)
            except urllib.error.HTTPError as exc:
                body = exc.read(4096)
                if exc.code == 401 and attempt == 0 and self._authenticate(exc.headers):
                    continue
                return exc.code, dict(exc.headers.items()), body
            except (urllib.error.URLError, OSError) as exc:
                raise RegistryError(f"{method} {url}: {getattr(exc, 'reason', exc)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _authenticate(self, headers: Any) -> bool:
        """Anonymous bearer token (``WWW-Authenticate: Bearer realm=...``)."""
        challenge = headers.get("WWW-Authenticate", "") if headers else ""
        if not challenge.lower().startswith("bearer "):
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            return False
        url = realm + "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT) as resp:
                token = json.loads(resp.read(1 << 20))
        except (urllib.error.URLError, OSError, ValueError):
            return False
        self._token = token.get("token") or token.get("access_token")
        return bool(self._token)

    def manifest(self, ref: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of a manifest by tag or digest; None if absent."""
        status, headers, body = self._request(
            "GET", f"{self.base}/manifests/{ref}", headers={"Accept": ACCEPT}
        )
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"{self.host}/{self.repository}:{ref}: HTTP {status}")
        if ref.startswith("sha256:") and "sha256:" + hashlib.sha256(body).hexdigest() != ref:
            raise RegistryError(
                f"{self.host}/{self.repository}@{ref}: the registry served other bytes"
            )
        media = headers.get("Content-Type", "")
        return body, json.loads(body).get("mediaType") or media

    def blob(self, digest: str) -> bytes:
        status, _, body = self._request("GET", f"{self.base}/blobs/{digest}")
        if status != 200:
            raise RegistryError(f"{self.host}/{self.repository}: blob {digest}: HTTP {status}")
        if len(body) > _MAX or "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryError(f"{self.host}/{self.repository}: blob {digest} is damaged")
        return body

    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = self._request("HEAD", f"{self.base}/blobs/{digest}")
        if status == 200:
            return digest
        status, headers, body = self._request("POST", f"{self.base}/blobs/uploads/")
        location = headers.get("Location")
        if status != 202 or not location:
            raise RegistryError(
                f"{self.host}: starting a blob upload: HTTP {status} {body[:200]!r}"
            )
        url = urllib.parse.urljoin(f"{self.base}/", location)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        status, _, body = self._request(
            "PUT", url, data=data, headers={"Content-Type": "application/octet-stream"}
        )
        if status != 201:
            raise RegistryError(f"{self.host}: uploading {digest}: HTTP {status} {body[:200]!r}")
        return digest

    def put_manifest(self, ref: str, data: bytes, media_type: str) -> str:
        status, _, body = self._request(
            "PUT", f"{self.base}/manifests/{ref}", data=data, headers={"Content-Type": media_type}
        )
        if status != 201:
            raise RegistryError(
                f"{self.host}: pushing manifest {ref}: HTTP {status} {body[:300]!r}"
            )
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def referrers(self, digest: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is *digest*."""
        status, _, body = self._request(
            "GET", f"{self.base}/referrers/{digest}", headers={"Accept": INDEX}
        )
        if status == 200:
            return list(json.loads(body).get("manifests", []))
        found = self.manifest(fallback_tag(digest))
        if found is None:
            return []
        return list(json.loads(found[0]).get("manifests", []))


def fallback_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema: ``sha256-HEX``."""
    return digest.replace(":", "-", 1)


def _loopback(host: str) -> bool:
    return not skopeo_tls_verify(host, True)
