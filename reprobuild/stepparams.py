"""Each step kind's parameters as a frozen dataclass, made from the table in stepspec.

The language checks a step's arguments once, at evaluation
(:func:`reprobuild.lang.builtins.step_args`, from :data:`STEP_KINDS`); the
plan writes them as canonical JSON, which is what step keys hash and must
never change. This module turns that JSON into one typed value per step
(:func:`params_of`), so that executors and exporters read attributes mypy
checks instead of looking up strings in a dict. The dataclasses mirror the
table: :func:`check_table` (run by the tests) refuses a field the table does
not have, a table argument without a field, and a type that does not match
the argument's.

Inputs are :class:`StepRef` (a step's key: its plan key in the plan, its
effective key in the build graph) and :class:`FileRef` (a recipe file by its
path and content hash). ``files``, ``users`` and ``groups`` stay JSON-shaped
mappings: their entries are checked by the stages that apply them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

from reprobuild.stepspec import STEP_KINDS, ArgType

__all__ = [
    "CpioParams",
    "DiskImageParams",
    "FetchParams",
    "FetchurlParams",
    "FileParams",
    "FileRef",
    "ImageIndexParams",
    "IndexParams",
    "Iso9660Params",
    "OciImageParams",
    "PackagePin",
    "RootfsParams",
    "RunParams",
    "SnapshotParams",
    "SnapshotPin",
    "SquashfsParams",
    "StepParams",
    "StepRef",
    "TarballParams",
    "check_table",
    "params_of",
    "step_params",
]


@dataclass(frozen=True)
class StepRef:
    """Another step, by key."""

    key: str

    def to_json(self) -> dict[str, str]:
        return {"step": self.key}


@dataclass(frozen=True)
class FileRef:
    """A file or directory of the recipe's tree, by its path and content hash."""

    path: str
    sha256: str | None = None  # a file
    tree_sha256: str | None = None  # a directory


def _ref(value: Any) -> StepRef | FileRef:
    if isinstance(value, Mapping) and "step" in value:
        return StepRef(str(value["step"]))
    if isinstance(value, Mapping) and "path" in value:
        return FileRef(str(value["path"]), value.get("sha256"), value.get("tree-sha256"))
    raise TypeError(f"not a step or file reference: {value!r}")


def _step(value: Any) -> StepRef:
    ref = _ref(value)
    if not isinstance(ref, StepRef):
        raise TypeError(f"not a step reference: {value!r}")
    return ref


def _file(value: Any) -> FileRef:
    ref = _ref(value)
    if not isinstance(ref, FileRef):
        raise TypeError(f"not a file reference: {value!r}")
    return ref


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise TypeError(f"not a list of strings: {value!r}")
    return tuple(str(v) for v in value)


# How the JSON of each argument type becomes its typed value (None stays None).
_CONVERT: dict[ArgType, typing.Callable[[Any], Any]] = {
    "string": str,
    "int": int,
    "bool": bool,
    "strings": _strings,
    "string_or_strings": lambda v: v if isinstance(v, str) else _strings(v),
    "string_attrs": lambda v: {str(k): str(x) for k, x in v.items()},
    "files": lambda v: dict(v),
    "path_or_string": lambda v: v if isinstance(v, str) else _file(v),
    "path": _file,
    "step": _step,
    "step_or_steps": lambda v: tuple(_step(x) for x in v) if isinstance(v, list) else (_step(v),),
    "steps": lambda v: tuple(_step(x) for x in v),
    "inputs": lambda v: {str(k): _ref(x) for k, x in v.items()},
    "attrs_list": lambda v: tuple(dict(x) for x in v),
    "size": lambda v: v,
}

P = TypeVar("P", bound="StepParams")

# The choices of the table's arguments (stepspec), as types.
Variant = Literal["none", "essential", "required", "minbase", "important"]
LayerCompression = Literal["gzip", "zstd", "none"]
ArchiveCompression = Literal["none", "gzip", "zstd", "xz"]
SquashfsCompression = Literal["gzip", "xz", "zstd"]
IsoBoot = Literal["bios", "uefi", "hybrid"]
DiskBoot = Literal["bios", "uefi"]
Filesystem = Literal["ext4", "squashfs", "erofs"]
PartitionTable = Literal["gpt"]
DiskFormat = Literal["raw", "qcow2"]
Installer = Literal["reprobuild", "debootstrap"]
Normalise = Literal["full", "minimal", "epoch"]
TarFormat = Literal["canonical", "gnu", "posix"]


@dataclass(frozen=True)
class StepParams:
    """The parameters of one step (its display name is not one: not in the key)."""

    kind: ClassVar[str]
    internal: ClassVar[bool] = False  # a kind the build graph adds, not in the table
    _by_kind: ClassVar[dict[str, type[StepParams]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        StepParams._by_kind[cls.kind] = cls

    @classmethod
    def from_step(cls: type[P], data: Mapping[str, Any]) -> P:
        """The typed value of a build step's data (its ``params``)."""
        return cls.from_json(data.get("params") or {})

    @classmethod
    def from_json(cls: type[P], data: Mapping[str, Any]) -> P:
        """The typed value of a step's JSON parameters (as the plan wrote them)."""
        spec = STEP_KINDS[cls.kind]
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            arg = spec.arg(f.name)
            assert arg is not None, f.name
            raw = data.get(f.name)
            if raw is None:
                if f.name not in data and arg.default is not None:
                    raw = arg.default  # an argument left out unless given (only_when_given)
                else:
                    continue
            values[f.name] = _CONVERT[arg.type](raw)
        return cls(**values)


@dataclass(frozen=True)
class SnapshotParams(StepParams):
    kind = "snapshot"
    archive: str = ""
    date: str = ""
    suites: tuple[str, ...] | None = None
    components: tuple[str, ...] | None = None
    repos: tuple[str, ...] | None = None
    arch: str | None = None


@dataclass(frozen=True)
class RootfsParams(StepParams):
    kind = "rootfs"
    snapshot: tuple[StepRef, ...] = ()
    variant: Variant = "essential"
    packages: tuple[str, ...] = ()
    packages_from: FileRef | None = None
    files: Mapping[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    users: tuple[Mapping[str, Any], ...] = ()
    groups: tuple[Mapping[str, Any], ...] = ()
    hostname: str | None = None
    hosts: Mapping[str, str] | None = None  # given (even empty): /etc/hosts is written
    root_password_hash: str | None = None
    autologin: str | None = None
    locale: str | None = None
    timezone: str | None = None
    keymap: str | None = None
    enable_units: tuple[str, ...] = ()
    disable_units: tuple[str, ...] = ()
    mask_units: tuple[str, ...] = ()
    apt_sources: bool = True
    configure: bool | None = None
    base: StepRef | None = None
    installer: Installer | None = None
    mirror: str | None = None
    no_extract: tuple[str, ...] | None = None
    normalise: Normalise | None = None


@dataclass(frozen=True)
class RunParams(StepParams):
    kind = "run"
    root: StepRef = StepRef("")
    script: str = ""
    inputs: Mapping[str, StepRef | FileRef] = field(default_factory=dict)
    outputs: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    tmpfs: tuple[str, ...] | None = None
    normalise: Normalise | None = None


@dataclass(frozen=True)
class OciImageParams(StepParams):
    kind = "oci_image"
    root: StepRef | None = None
    layers: tuple[StepRef, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    tag: str | None = None
    architecture: str | None = None
    compression: LayerCompression = "gzip"

    @property
    def trees(self) -> tuple[StepRef, ...]:
        """The layers, bottom first: ``layers``, else the one ``root``."""
        if self.layers:
            return self.layers
        return (self.root,) if self.root is not None else ()


@dataclass(frozen=True)
class ImageIndexParams(StepParams):
    kind = "image_index"
    images: tuple[StepRef, ...] = ()
    tag: str | None = None


@dataclass(frozen=True)
class BootParams(StepParams):
    """What the bootable images share: a root and, with ``boot``, its kernel."""

    kind = "_boot"
    root: StepRef = StepRef("")
    boot: str | None = None  # narrowed by each kind's ``boot_kind``
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None

    def boot_files(self) -> tuple[str | None, str | None, str | None]:
        """(kernel, initrd, cmdline), only when a boot is asked for (the exporters
        refuse them otherwise)."""
        if not self.boot:
            return None, None, None
        return self.kernel, self.initrd, self.cmdline


@dataclass(frozen=True)
class Iso9660Params(BootParams):
    kind = "iso9660"
    boot: IsoBoot | None = None
    volume_id: str | None = None


@dataclass(frozen=True)
class DiskImageParams(BootParams):
    kind = "disk_image"
    boot: DiskBoot | None = None
    size: str | int = "2G"
    filesystem: Filesystem = "ext4"
    partition_table: PartitionTable = "gpt"
    format: DiskFormat = "raw"
    grow_root: bool = False


@dataclass(frozen=True)
class TarballParams(StepParams):
    kind = "tarball"
    root: StepRef = StepRef("")
    compression: ArchiveCompression = "none"
    format: TarFormat | None = None
    exclude: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CpioParams(StepParams):
    kind = "cpio"
    root: StepRef = StepRef("")
    compression: ArchiveCompression = "none"


@dataclass(frozen=True)
class SquashfsParams(StepParams):
    kind = "squashfs"
    root: StepRef = StepRef("")
    compression: SquashfsCompression = "zstd"


@dataclass(frozen=True)
class FetchurlParams(StepParams):
    kind = "fetchurl"
    url: str = ""
    sha256: str = ""
    size: int | None = None


@dataclass(frozen=True)
class FileParams(StepParams):
    kind = "file"
    path: FileRef | None = None
    text: str | None = None
    mode: str = "0644"


@dataclass(frozen=True)
class SnapshotPin:
    """A snapshot as the lockfile pinned it (what fetch and snapshot steps read)."""

    name: str
    archive: str
    format: str
    timestamp: str
    url: str
    architecture: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SnapshotPin:
        return cls(**{f.name: str(data[f.name]) for f in dataclasses.fields(cls)})

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PackagePin:
    """A package as the lockfile pinned it; ``extra`` holds what its format adds
    (the signature an Arch package is verified against)."""

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    snapshot: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PackagePin:
        common = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            **{k: data[k] for k in common},
            extra={k: v for k, v in data.items() if k not in common},
        )

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}


@dataclass(frozen=True)
class FetchParams(StepParams):
    """A locked package to fetch: the build graph's own kind (keyed by its sha256)."""

    kind = "fetch"
    internal = True
    package: PackagePin | None = None
    snapshot: SnapshotPin | None = None

    @classmethod
    def from_step(cls, data: Mapping[str, Any]) -> FetchParams:
        return cls(PackagePin.from_json(data["package"]), SnapshotPin.from_json(data["snapshot"]))


@dataclass(frozen=True)
class IndexParams(StepParams):
    """A file of a snapshot the lockfile pinned (a signed Release, an index), fetched
    by sha256: the build graph's own kind (PackageFormat.rootfs_inputs asks for it)."""

    kind = "index"
    internal = True
    path: str = ""
    sha256: str = ""
    snapshot: SnapshotPin | None = None

    @classmethod
    def from_step(cls, data: Mapping[str, Any]) -> IndexParams:
        f = data["file"]
        return cls(str(f["path"]), str(f["sha256"]), SnapshotPin.from_json(data["snapshot"]))


def params_of(kind: str, data: Mapping[str, Any]) -> StepParams:
    """The typed parameters of a step of *kind* from its JSON parameters."""
    return StepParams._by_kind[kind].from_json(data)


def step_params(kind: str, data: Mapping[str, Any]) -> StepParams:
    """The typed value of a build step of *kind* from its data (:meth:`StepParams.from_step`)."""
    return StepParams._by_kind[kind].from_step(data)


# Which Python types may hold each argument type's value (for check_table).
_TYPES: dict[ArgType, tuple[Any, ...]] = {
    "string": (str,),
    "int": (int,),
    "bool": (bool,),
    "strings": (tuple[str, ...],),
    "string_or_strings": (str, tuple[str, ...]),
    "string_attrs": (Mapping[str, str],),
    "files": (Mapping[str, Any],),
    "path_or_string": (str, FileRef),
    "path": (FileRef,),
    "step": (StepRef,),
    "step_or_steps": (tuple[StepRef, ...],),
    "steps": (tuple[StepRef, ...],),
    "inputs": (Mapping[str, StepRef | FileRef],),
    "attrs_list": (tuple[Mapping[str, Any], ...],),
    "size": (str, int),
}


def check_table() -> list[str]:
    """Where the dataclasses and the table of step kinds disagree (empty: nowhere)."""
    problems = []
    kinds = {
        k: c for k, c in StepParams._by_kind.items() if not k.startswith("_") and not c.internal
    }
    if set(kinds) != set(STEP_KINDS):
        problems.append(f"kinds: {sorted(kinds)} != {sorted(STEP_KINDS)}")
    for name, cls in sorted(kinds.items()):
        spec = STEP_KINDS.get(name)
        if spec is None:
            continue
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        wanted = {a.name for a in spec.args} - {"name"}
        if fields != wanted:
            problems.append(f"{name}: fields {sorted(fields ^ wanted)} differ from the table")
        for arg in spec.args:
            if arg.name not in fields:
                continue
            hint = hints[arg.name]
            got = (
                [t for t in typing.get_args(hint) if t is not type(None)]
                if typing.get_origin(hint) in (typing.Union, types.UnionType)
                else [hint]
            )
            wanted_types = _TYPES[arg.type]
            if arg.choices:  # a string with choices: the Literal of those
                wanted_types = (Literal[tuple(c for c in arg.choices if c is not None)],)
            if set(map(repr, got)) != set(map(repr, wanted_types)):
                problems.append(f"{name}.{arg.name}: {got} is not {_TYPES[arg.type]} ({arg.type})")
    return problems
