"""The values the store keeps: blobs, step records, build records, pointers.

Records serialise to canonical JSON (sorted keys, two-space indent, trailing
newline) so the same record always yields the same git blob and, for steps,
the same commit id on every machine. Outputs are referenced from git trees by
git-lfs pointer files, so ``git show refs/steps/KEY:outputs/NAME`` is readable
and git-lfs tooling recognises them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reprobuild.canonical import canonical_bytes
from reprobuild.errors import StoreError

RECORD_FORMAT = 1
LFS_VERSION = "https://git-lfs.github.com/spec/v1"
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")


def check_sha256(sha256: str) -> str:
    """Reject anything but 64 lower-case hex digits (it becomes a file name)."""
    if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
        raise StoreError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def check_ref_component(value: str, what: str) -> str:
    """A step key or recipe name must be one safe git ref component."""
    if (
        not isinstance(value, str)
        or not _KEY_RE.fullmatch(value)
        or ".." in value
        or value.endswith((".lock", "."))
    ):
        raise StoreError(
            f"invalid {what} {value!r}",
            hint="use letters, digits and . _ + - (no '..', not ending in .lock)",
        )
    return value


@dataclass(frozen=True)
class Blob:
    """A content object: its sha256 (the address) and its size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Output:
    """A named artifact of a step or build, pointing at store content."""

    name: str
    sha256: str
    size: int
    media_type: str = "application/octet-stream"

    def __post_init__(self) -> None:
        check_sha256(self.sha256)
        if not self.name or "\0" in self.name or self.name in (".", ".."):
            raise StoreError(f"invalid output name {self.name!r}")
        if self.size < 0:
            raise StoreError(f"negative size for output {self.name!r}")

    @property
    def blob(self) -> Blob:
        return Blob(self.sha256, self.size)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Output:
        return cls(
            name=str(data["name"]),
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            media_type=str(data.get("media_type", "application/octet-stream")),
        )


def _check_unique(outputs: Iterable[Output], what: str) -> None:
    names = [o.name for o in outputs]
    if len(names) != len(set(names)):
        raise StoreError(f"duplicate {what} names in record: {sorted(names)}")


@dataclass(frozen=True)
class StepRecord:
    """What a step produced, keyed by the step key (see plan.py).

    ``inputs`` are the keys of the steps it consumed; ``versions`` the tool
    and format versions that shape its bytes; ``params`` optional JSON data.
    """

    kind: str
    key: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[Output, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ref_component(self.key, "step key")
        _check_unique(self.outputs, "output")

    def output(self, name: str) -> Output:
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "type": "step",
            "kind": self.kind,
            "key": self.key,
            "inputs": list(self.inputs),
            "outputs": [o.to_json() for o in self.outputs],
            "versions": dict(self.versions),
            "params": dict(self.params),
        }

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_json(), document=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> StepRecord:
        try:
            obj = json.loads(data)
            return cls(
                kind=str(obj["kind"]),
                key=str(obj["key"]),
                inputs=tuple(str(k) for k in obj.get("inputs", ())),
                outputs=tuple(Output.from_json(o) for o in obj.get("outputs", ())),
                versions={str(k): str(v) for k, v in obj.get("versions", {}).items()},
                params=dict(obj.get("params", {})),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"malformed step record: {exc}") from exc


@dataclass(frozen=True)
class BuildRecord:
    """One build of a recipe: the steps it ran and what it exported.

    ``sources`` are stored inputs that define the build (the recipe text,
    the lockfile) so a replay finds them in the store; ``meta`` is free JSON.
    """

    recipe: str
    steps: tuple[str, ...] = ()
    outputs: tuple[Output, ...] = ()
    sources: tuple[Output, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_ref_component(self.recipe, "recipe name")
        _check_unique(self.outputs, "output")
        _check_unique(self.sources, "source")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "type": "build",
            "recipe": self.recipe,
            "steps": list(self.steps),
            "outputs": [o.to_json() for o in self.outputs],
            "sources": [o.to_json() for o in self.sources],
            "versions": dict(self.versions),
            "meta": dict(self.meta),
        }

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_json(), document=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> BuildRecord:
        try:
            obj = json.loads(data)
            return cls(
                recipe=str(obj["recipe"]),
                steps=tuple(str(k) for k in obj.get("steps", ())),
                outputs=tuple(Output.from_json(o) for o in obj.get("outputs", ())),
                sources=tuple(Output.from_json(o) for o in obj.get("sources", ())),
                versions={str(k): str(v) for k, v in obj.get("versions", {}).items()},
                meta=dict(obj.get("meta", {})),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"malformed build record: {exc}") from exc


def pointer_bytes(blob: Blob) -> bytes:
    """A git-lfs v1 pointer file for ``blob``."""
    return f"version {LFS_VERSION}\noid sha256:{blob.sha256}\nsize {blob.size}\n".encode("ascii")


def parse_pointer(data: bytes) -> Blob | None:
    """The blob a git-lfs pointer names, or None if ``data`` is not one."""
    if len(data) > 1024 or not data.startswith(b"version https://git-lfs"):
        return None
    sha256: str | None = None
    size: int | None = None
    try:
        for line in data.decode("ascii").splitlines():
            if line.startswith("oid sha256:"):
                sha256 = line[len("oid sha256:") :]
            elif line.startswith("size "):
                size = int(line[len("size ") :])
    except (UnicodeDecodeError, ValueError):
        return None
    if sha256 is None or size is None or not _SHA256_RE.fullmatch(sha256) or size < 0:
        return None
    return Blob(sha256, size)


def tree_entry_name(name: str) -> bytes:
    """Output names may contain '/'; a tree entry may not, so percent-quote it."""
    return name.replace("%", "%25").replace("/", "%2F").encode("utf-8")


@dataclass(frozen=True)
class TransferReport:
    """What a push or pull changed."""

    remote: str
    updated: tuple[str, ...]  # record refs created on the receiving side
    unchanged: int  # record refs already equal on both sides
    conflicts: tuple[str, ...]  # record refs that differ; left alone on the receiving side
    content_objects: int  # content objects transferred
    content_bytes: int  # their size
    sent_bytes: int = 0  # push: bytes of chunks and files actually sent (the rest was there)
