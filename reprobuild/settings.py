"""The settings every command that fetches accepts, as one table.

``lock``, ``build``, ``replay``, ``check`` and ``verify-attestation`` all read
archives: each takes the same mirror, keyring, archive-definition and
signature-policy settings, and those that keep what they fetch take the
store. The table below drives the command-line flags
(:mod:`reprobuild.cli_options`) and the arguments ``check`` hands to the
builds it runs (:meth:`FetchSettings.argv`), so a flag added here reaches
every command and every sub-build at once (mkosi keeps its settings so).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from reprobuild.locking import Sources

__all__ = ["FETCH_OPTIONS", "STORE_OPTION", "FetchSettings", "Option"]


@dataclass(frozen=True)
class Option:
    """One setting: the :class:`FetchSettings` field it fills and its flag."""

    field: str
    flag: str
    kind: Literal["repeated", "flag", "directories", "directory"]
    help: str
    metavar: str | None = None
    envvar: str | None = None  # read by the flag parser itself (others read theirs later)


FETCH_OPTIONS: tuple[Option, ...] = (
    Option(
        "mirrors",
        "--mirror",
        "repeated",
        "Read archive NAME from URL instead of its canonical place "
        "(also REPROBUILD_MIRROR_<NAME>); the lockfile keeps canonical URLs.",
        metavar="NAME=URL",
    ),
    Option(
        "keyrings",
        "--keyring",
        "repeated",
        "Use PATH as the keyring of archive NAME (also REPROBUILD_KEYRING_<NAME>).",
        metavar="NAME=PATH",
    ),
    Option(
        "archives",
        "--archives",
        "directories",
        "Read archive definitions (NAME.toml) from DIR first; then "
        "${XDG_CONFIG_HOME:-~/.config}/reprobuild/archives/, then those shipped.",
        metavar="DIR",
    ),
    Option(
        "insecure_allow_unsigned",
        "--insecure-allow-unsigned",
        "flag",
        "Do not check index signatures, nor Arch Linux package signatures (recorded "
        "in the lockfile; needed again to build what such a lockfile pins).",
    ),
    Option(
        "allow_expired",
        "--allow-expired",
        "flag",
        "Accept a Release whose Valid-Until passed after the snapshot was taken "
        "(old snapshots; apt's Check-Valid-Until=false), and Arch packages signed by keys "
        "the keyring lists as revoked since. Also REPROBUILD_ALLOW_EXPIRED=1.",
    ),
)

STORE_OPTION = Option(
    "store_path",
    "--store",
    "directory",
    "The store directory (default ${XDG_DATA_HOME:-~/.local/share}/reprobuild/store; "
    "also REPROBUILD_STORE).",
    envvar="REPROBUILD_STORE",
)


@dataclass(frozen=True)
class FetchSettings:
    """Where archives are read from and how their signatures are judged."""

    mirrors: tuple[str, ...] = ()
    keyrings: tuple[str, ...] = ()
    archives: tuple[Path, ...] = ()
    insecure_allow_unsigned: bool = False
    allow_expired: bool = False
    store_path: Path | None = None

    def __post_init__(self) -> None:
        names = {f.name for f in fields(self)}
        assert names == {o.field for o in (*FETCH_OPTIONS, STORE_OPTION)}, names

    def sources(self) -> Sources:
        """The mirrors, keyrings and policy, merged with the environment's."""
        from reprobuild.archives import use_dirs
        from reprobuild.locking import Sources

        if self.archives:
            use_dirs(self.archives)
        return Sources.from_env(
            self.mirrors,
            self.keyrings,
            self.insecure_allow_unsigned,
            allow_expired=self.allow_expired,
        )

    def argv(self, *, store: bool = False) -> list[str]:
        """These settings as command-line arguments, for a command run as a child."""
        out: list[str] = []
        for option in (*FETCH_OPTIONS, *((STORE_OPTION,) if store else ())):
            value = getattr(self, option.field)
            if option.kind == "flag":
                out += [option.flag] if value else []
            elif option.kind == "directory":
                out += [option.flag, str(Path(value).resolve())] if value is not None else []
            elif option.kind == "directories":  # absolute: a child may run elsewhere
                out += [a for v in value for a in (option.flag, str(Path(v).resolve()))]
            else:
                out += [a for v in value for a in (option.flag, str(v))]
        return out
