"""The table of step kinds and their arguments.

One table drives argument validation in the language, ``eval --json``
output, and the planner's canonical parameters (mkosi keeps its settings the
same way). Later stages add behaviour per kind; the arguments a recipe may
pass live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The argument types a step accepts.
ArgType = Literal[
    "string",
    "int",
    "bool",
    "strings",  # list of strings
    "string_or_strings",
    "string_attrs",  # attribute set of strings
    "files",  # attribute set: absolute path in the image -> string | path | step
    "path_or_string",
    "path",
    "step",  # one step value, of a kind in `steps`
    "step_or_steps",  # one step or a list of them
    "steps",  # a list of steps
    "inputs",  # attribute set of name -> path | step
    "attrs_list",  # list of attribute sets (users, groups)
    "size",  # "512M", "2G", or a number of bytes
]


@dataclass(frozen=True)
class Arg:
    name: str
    type: ArgType
    required: bool = False
    default: object = None
    choices: tuple[object, ...] = ()
    steps: tuple[str, ...] = ()  # accepted step kinds for step-typed arguments
    doc: str = ""
    # Left out of the step's parameters unless given: an argument added later
    # changes no existing step key (a disk's identifiers derive from its key).
    only_when_given: bool = False


@dataclass(frozen=True)
class StepKind:
    name: str
    args: tuple[Arg, ...]
    doc: str
    produces: Literal["snapshot", "tree", "artifact", "file"]

    def arg(self, name: str) -> Arg | None:
        for a in self.args:
            if a.name == name:
                return a
        return None

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)


def _later(name: str, type: ArgType, doc: str, default: object = None) -> Arg:
    """An argument added after recipes were locked: left out of the step's
    parameters unless given, so no existing step key (or disk identifier
    derived from one) changes."""
    return Arg(name, type, default=default, doc=doc, only_when_given=True)


TREES = ("rootfs", "run")  # steps whose result is a file-system tree
NAME = Arg("name", "string", doc="a name for progress output and the store")
COMPRESSION = ("none", "gzip", "zstd", "xz")
NORMALISE = Arg(
    "normalise",
    "string",
    choices=(None, "full", "minimal", "epoch"),
    only_when_given=True,
    doc='"full" (default): remove logs, caches, dpkg\'s -old backups, set /etc/shadow '
    'days to the epoch\'s; "minimal": change only what would differ between two builds '
    "(mtimes clamped, /var/log files and ldconfig's aux-cache emptied, machine-id emptied, "
    'shadow days clamped to the epoch\'s), keeping what a reference tool leaves; "epoch": '
    "as minimal, but every mtime becomes the epoch (find -exec touch --date=@EPOCH)",
)

STEP_KINDS: dict[str, StepKind] = {
    k.name: k
    for k in (
        StepKind(
            "snapshot",
            (
                NAME,
                Arg("archive", "string", required=True, doc="an archive in snapshots/NAME.toml"),
                Arg("date", "string", required=True, doc="newest snapshot at or before this"),
                Arg("suites", "strings", doc='Debian suites, e.g. [ "bookworm" ]'),
                Arg("components", "strings", default=["main"]),
                Arg("repos", "strings", doc='Arch Linux repositories, e.g. [ "core" ]'),
                Arg("arch", "string", doc="default: amd64 (Debian), x86_64 (Arch Linux)"),
            ),
            "a dated, signed archive index",
            "snapshot",
        ),
        StepKind(
            "rootfs",
            (
                NAME,
                Arg("snapshot", "step_or_steps", required=True, steps=("snapshot",)),
                Arg(
                    "variant",
                    "string",
                    default="essential",
                    choices=("none", "essential", "required", "minbase", "important"),
                ),
                Arg("packages", "strings", default=[]),
                _later(
                    "packages_from",
                    "path",
                    "a file naming more packages, one a line (# comments), read at evaluation",
                ),
                Arg("files", "files", default={}),
                Arg("remove", "strings", default=[]),
                Arg(
                    "users",
                    "attrs_list",
                    default=[],
                    doc="{ name; uid?; password_hash?; ssh_authorized_keys?; groups?; ... }",
                ),
                Arg("groups", "attrs_list", default=[]),
                Arg("hostname", "string"),
                _later("hosts", "string_attrs", "/etc/hosts: address -> names (hostname added)"),
                _later("root_password_hash", "string", "a crypt(3) hash; default: root locked"),
                _later("autologin", "string", "a user logged in on the consoles (test images)"),
                _later("locale", "string", 'LANG, e.g. "en_US.UTF-8" (made with locale-gen)'),
                _later("timezone", "string", 'e.g. "Europe/Berlin" (needs tzdata)'),
                _later("keymap", "string", 'console keymap for /etc/vconsole.conf, e.g. "de"'),
                _later("enable_units", "strings", "systemd units enabled by preset", []),
                _later("disable_units", "strings", "systemd units disabled by preset", []),
                _later("mask_units", "strings", "systemd units masked (linked to /dev/null)", []),
                _later(
                    "apt_sources",
                    "bool",
                    "write /etc/apt/sources.list pointing at the snapshot (when apt is in)",
                    True,
                ),
                Arg("configure", "bool", doc="run maintainer scripts (default: when dpkg is in)"),
                Arg("base", "step", steps=TREES, doc="a tree to install on top of"),
                Arg(
                    "installer",
                    "string",
                    choices=(None, "reprobuild", "debootstrap"),
                    only_when_given=True,
                    doc='"reprobuild" (default, as mmdebstrap does) or "debootstrap": '
                    "debootstrap 1.0.128's package choice and two-stage procedure, step "
                    "for step (reprobuild/archives/debian/debootstrap.py)",
                ),
                Arg(
                    "mirror",
                    "string",
                    only_when_given=True,
                    doc='installer "debootstrap": the mirror URL it writes to sources.list '
                    "and names its lists after ({timestamp} becomes the snapshot's); "
                    "default: the snapshot's canonical URL",
                ),
                Arg(
                    "no_extract",
                    "strings",
                    only_when_given=True,
                    doc="Arch Linux: pacman.conf NoExtract patterns (fnmatch, the last match "
                    "decides, ! re-includes); matching members are listed, not extracted",
                ),
                NORMALISE,
            ),
            "a root file system from locked packages",
            "tree",
        ),
        StepKind(
            "run",
            (
                NAME,
                Arg("root", "step", required=True, steps=TREES),
                Arg("script", "string", required=True),
                Arg("inputs", "inputs", default={}),
                Arg("outputs", "strings", doc="paths to keep; default: the whole new tree"),
                Arg("env", "string_attrs", default={}),
                Arg(
                    "tmpfs",
                    "strings",
                    only_when_given=True,
                    doc='fresh tmpfs mounts (default [ "/tmp" "/run" ]); [ ] leaves the '
                    "tree's own directories, as a chroot would",
                ),
                NORMALISE,
            ),
            "a command in the sandbox, without network",
            "tree",
        ),
        StepKind(
            "oci_image",
            (
                NAME,
                Arg("root", "step", steps=TREES),
                Arg("layers", "steps", steps=TREES),
                Arg("entrypoint", "strings"),
                Arg("cmd", "strings"),
                Arg("env", "string_attrs", default={}),
                Arg("workdir", "string"),
                Arg("user", "string"),
                Arg("labels", "string_attrs", default={}),
                Arg("exposed_ports", "strings", default=[]),
                Arg("tag", "string"),
                Arg("architecture", "string"),
                Arg("compression", "string", default="gzip", choices=("gzip", "zstd", "none")),
            ),
            "an OCI image layout and oci-archive",
            "artifact",
        ),
        StepKind(
            "image_index",
            (
                NAME,
                Arg("images", "steps", required=True, steps=("oci_image",)),
                Arg("tag", "string"),
            ),
            "a multi-architecture OCI image index",
            "artifact",
        ),
        StepKind(
            "iso9660",
            (
                NAME,
                Arg("root", "step", required=True, steps=TREES),
                Arg("volume_id", "string"),
                Arg("boot", "string", choices=(None, "bios", "uefi", "hybrid")),
                Arg("kernel", "string"),
                Arg("initrd", "string"),
                Arg("cmdline", "string"),
            ),
            "an ISO 9660 image with Rock Ridge and Joliet",
            "artifact",
        ),
        StepKind(
            "disk_image",
            (
                NAME,
                Arg("root", "step", required=True, steps=TREES),
                Arg("size", "size", default="2G"),
                Arg("filesystem", "string", default="ext4", choices=("ext4", "squashfs", "erofs")),
                Arg("partition_table", "string", default="gpt", choices=("gpt",)),
                Arg("format", "string", default="raw", choices=("raw", "qcow2")),
                Arg("boot", "string", choices=(None, "bios", "uefi")),
                Arg("kernel", "string", doc="path in the tree (default /boot/vmlinuz)"),
                Arg("initrd", "string", doc="path in the tree (default /boot/initrd.img)"),
                Arg("cmdline", "string", doc="default: console=ttyS0"),
                _later(
                    "grow_root",
                    "bool",
                    "grow the root partition and file system to the disk on boot",
                    False,
                ),
            ),
            "a partitioned VM disk image",
            "artifact",
        ),
        StepKind(
            "tarball",
            (
                NAME,
                Arg("root", "step", required=True, steps=TREES),
                Arg("compression", "string", default="none", choices=COMPRESSION),
                Arg(
                    "format",
                    "string",
                    choices=(None, "canonical", "gnu", "posix"),
                    only_when_given=True,
                    doc='"canonical" (default, pax; reprobuild\'s tree format); "gnu": '
                    "the bytes of GNU tar 1.34 'tar --create --format=gnu --numeric-owner "
                    "--sort=name --transform s,^./,, --directory ROOT .' (debuerreotype-tar); "
                    '"posix": GNU tar\'s --format=posix --numeric-owner --sort=name '
                    "--mtime=@EPOCH --clamp-mtime --pax-option=delete=atime,delete=ctime "
                    "(archlinux-docker)",
                ),
                Arg(
                    "exclude",
                    "strings",
                    only_when_given=True,
                    doc="GNU tar --exclude patterns matched against ./path names "
                    "(wildcards match '/', unanchored, a match excludes what is below)",
                ),
            ),
            "a canonical tar archive of a tree",
            "artifact",
        ),
        StepKind(
            "cpio",
            (
                NAME,
                Arg("root", "step", required=True, steps=TREES),
                Arg("compression", "string", default="none", choices=COMPRESSION),
            ),
            "a newc cpio archive (for an initramfs)",
            "artifact",
        ),
        StepKind(
            "squashfs",
            (
                NAME,
                Arg("root", "step", required=True, steps=TREES),
                Arg("compression", "string", default="zstd", choices=("gzip", "xz", "zstd")),
            ),
            "a squashfs image",
            "artifact",
        ),
        StepKind(
            "fetchurl",
            (
                NAME,
                Arg("url", "string", required=True),
                Arg("sha256", "string", required=True),
                Arg("size", "int"),
            ),
            "a file from the network, pinned by sha256",
            "file",
        ),
        StepKind(
            "file",
            (
                NAME,
                Arg("path", "path", doc="a file beside the recipe"),
                Arg("text", "string", doc="literal contents"),
                Arg("mode", "string", default="0644"),
            ),
            "a file from the recipe tree or from literal text",
            "file",
        ),
    )
}
