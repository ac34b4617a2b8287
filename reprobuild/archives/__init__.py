"""Archive definitions: where a dated snapshot lives and which keyring signs it.

Each archive is a ``NAME.toml`` file next to its keyring, so adding a
distribution (or a private mirror of one) needs no code change. They are
looked up, first found wins, in:

1. the directories given with ``--archives DIR`` (:func:`use_dirs`) and in
   ``REPROBUILD_ARCHIVES`` (``:``-separated);
2. ``${XDG_CONFIG_HOME:-~/.config}/reprobuild/archives/``, a user's own;
3. the definitions shipped with reprobuild: the repository's ``snapshots/``
   directory, which ``reprobuild/archives/definitions`` links to, so that an
   installed wheel carries them (and the keyrings) as package data.

A relative ``keyring`` is read beside the definition, else from the shipped
keyrings, so a user's archive can name ``keyrings/debian-archive-keyring.gpg``.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reprobuild.archives.formats import PackageFormat, for_archive, format_names, package_format
from reprobuild.errors import ArchiveError, UsageError

if TYPE_CHECKING:
    from reprobuild.lockfile import SnapshotLock

__all__ = [
    "SNAPSHOTS_DIR",
    "ArchiveDef",
    "PackageFormat",
    "for_archive",
    "for_snapshot",
    "known_archives",
    "load_archive",
    "search_dirs",
    "snapshot_timestamp",
    "use_dirs",
]

SNAPSHOTS_DIR = (Path(__file__).parent / "definitions").resolve()
"""The definitions shipped with reprobuild: in a checkout the repository's
``snapshots/`` (through the ``definitions`` link), in a wheel its package data."""

_EXTRA_DIRS: tuple[Path, ...] = ()


def use_dirs(dirs: Sequence[Path]) -> None:
    """Search ``dirs`` before every other place (``--archives DIR``)."""
    global _EXTRA_DIRS
    _EXTRA_DIRS = tuple(Path(d) for d in dirs)


def user_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "reprobuild" / "archives"


def search_dirs() -> tuple[Path, ...]:
    """Where definitions are looked up, first found wins (see the module docstring)."""
    env = tuple(Path(d) for d in os.environ.get("REPROBUILD_ARCHIVES", "").split(os.pathsep) if d)
    return (*_EXTRA_DIRS, *env, user_dir(), SNAPSHOTS_DIR)

DateRule = Literal["redirect", "daily"]

_RULES: dict[str | None, DateRule] = {"redirect": "redirect", "daily": "daily"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_TIMESTAMP_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")


@dataclass(frozen=True)
class ArchiveDef:
    """One archive: format, canonical snapshot URL template, keyring and date rule.

    ``url`` is the canonical location recorded in lockfiles; mirrors are
    substituted elsewhere, never written into a definition or a lockfile.
    """

    name: str
    format: str  # a registered package format (reprobuild.archives.formats)
    url: str
    keyring: Path
    date_rule: DateRule
    source: Path
    description: str = ""
    layout: str | None = None
    keyring_package: str | None = None
    components: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()
    arch: str | None = None
    # Directories a --mirror URL may stand above (tried in order after the URL
    # itself): "repos/" lets a mirror of the Arch Linux Archive be named by its root.
    mirror_subdirs: tuple[str, ...] = ()
    # The distribution class among those of the format (default: the format's own).
    distribution: str | None = None

    def snapshot_url(self, date: str) -> str:
        """The canonical URL of the snapshot for ``date`` (any form snapshot_timestamp takes)."""
        ts = snapshot_timestamp(date)
        m = _TIMESTAMP_RE.match(ts)
        assert m is not None
        year, month, day = m.group(1), m.group(2), m.group(3)
        return self.url.format(timestamp=ts, year=year, month=month, day=day)

    def repo_url(self, date: str, repo: str, arch: str) -> str:
        """For ``alpm`` archives: the directory holding ``REPO.db`` and its packages."""
        if self.layout is None:
            raise ArchiveError(f"archive {self.name} has no repository layout")
        return self.snapshot_url(date) + self.layout.format(repo=repo, arch=arch)

    def require_keyring(self) -> Path:
        """The keyring path, or an error saying how to obtain it."""
        if not self.keyring.is_file():
            pkg = self.keyring_package
            raise ArchiveError(
                f"archive {self.name}: keyring {self.keyring} is missing",
                hint=(f"copy it from the {pkg} package" if pkg else None),
            )
        return self.keyring


def snapshot_timestamp(date_str: str) -> str:
    """Normalise a date to Debian's snapshot form ``YYYYMMDDTHHMMSSZ`` (UTC).

    Accepts ``2026-07-11T10:16:37Z``, other offsets (converted to UTC),
    ``2026-07-11`` (midnight UTC) and the snapshot form itself. A time
    without an offset is taken as UTC, never as the local zone, so that two
    machines resolve the same recipe to the same snapshot.
    """
    text = date_str.strip()
    if _TIMESTAMP_RE.match(text):
        dt = datetime.strptime(text, "%Y%m%dT%H%M%SZ")
    else:
        try:
            dt = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise UsageError(
                f"cannot read {date_str!r} as a date",
                hint="use an ISO date such as 2026-07-11 or 2026-07-11T10:16:37Z",
            ) from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y%m%dT%H%M%SZ")


def _search_dirs(dirs: Sequence[Path] | None) -> tuple[Path, ...]:
    return tuple(dirs) if dirs is not None else search_dirs()


def known_archives(search_dirs: Sequence[Path] | None = None) -> tuple[str, ...]:
    """Names of every archive defined in the search directories, sorted."""
    names: set[str] = set()
    for d in _search_dirs(search_dirs):
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.toml"))
    return tuple(sorted(names))


def _str(table: dict[str, object], key: str, where: str, *, required: bool = True) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            raise ArchiveError(f"{where}: missing key {key!r}")
        return None
    if not isinstance(value, str):
        raise ArchiveError(f"{where}: {key!r} must be a string")
    return value


def _strs(table: dict[str, object], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArchiveError(f"{where}: {key!r} must be a list of strings")
    return tuple(value)


def _table(doc: dict[str, object], key: str, where: str) -> dict[str, object]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ArchiveError(f"{where}: [{key}] must be a table")
    return value


def load_archive(name: str, search_dirs: Sequence[Path] | None = None) -> ArchiveDef:
    """Read ``NAME.toml`` from the first search directory that has it.

    The keyring path is relative to the definition file. The keyring is not
    required to exist here (see :meth:`ArchiveDef.require_keyring`), so
    listing or locking other archives still works while one lacks its keyring.
    """
    dirs = _search_dirs(search_dirs)
    if not _NAME_RE.match(name):
        raise ArchiveError(f"invalid archive name {name!r}")
    path = next((d / f"{name}.toml" for d in dirs if (d / f"{name}.toml").is_file()), None)
    if path is None:
        import difflib

        names = known_archives(dirs)
        close = difflib.get_close_matches(name, names, n=1)
        places = ", ".join(
            "those shipped with reprobuild" if d == SNAPSHOTS_DIR else str(d) for d in dirs
        )
        raise ArchiveError(
            f"unknown archive {name!r}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + f"known archives: {', '.join(names) or 'none'} (definitions NAME.toml are read "
            f"from {places})",
        )
    where = str(path)
    try:
        doc: dict[str, object] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ArchiveError(f"{where}: cannot read archive definition: {exc}") from exc
    fmt = _str(doc, "format", where)
    if fmt not in format_names():
        known = " or ".join(repr(f) for f in format_names())
        raise ArchiveError(f"{where}: format must be {known}, not {fmt!r}")
    url = _str(doc, "url", where)
    assert url is not None
    if not url.endswith("/"):
        raise ArchiveError(f"{where}: url must end with '/'")
    from reprobuild.redact import has_password, redact

    if has_password(url):  # it would be written into every lockfile and provenance statement
        raise ArchiveError(
            f"{where}: url {redact(url)!r} carries a password; a definition's URL is "
            "recorded in lockfiles",
            hint=f"give the credentials only to a mirror: --mirror {name}=https://USER:PASS@...",
        )
    date = _table(doc, "date", where)
    rule_text = _str(date, "rule", f"{where} [date]")
    rule = _RULES.get(rule_text)
    if rule is None:
        raise ArchiveError(f"{where}: [date] rule must be 'redirect' or 'daily', not {rule_text!r}")
    defaults = _table(doc, "defaults", where)
    keyring = _str(doc, "keyring", where)
    assert keyring is not None
    declared = _str(doc, "name", where, required=False)
    if declared is not None and declared != name:
        raise ArchiveError(f"{where}: file defines archive {declared!r}, expected {name!r}")
    assert fmt is not None
    archive = ArchiveDef(
        name=name,
        format=fmt,
        url=url,
        keyring=_keyring_path(path.parent, keyring),
        date_rule=rule,
        source=path,
        description=_str(doc, "description", where, required=False) or "",
        layout=_str(doc, "layout", where, required=False),
        keyring_package=_str(doc, "keyring_package", where, required=False),
        components=_strs(defaults, "components", f"{where} [defaults]"),
        repos=_strs(defaults, "repos", f"{where} [defaults]"),
        arch=_str(defaults, "arch", f"{where} [defaults]", required=False),
        mirror_subdirs=_strs(doc, "mirror_subdirs", where),
        distribution=_str(doc, "distribution", where, required=False),
    )
    for_archive(archive)  # an unknown distribution, or one of another format, is refused here
    return archive


def _keyring_path(definition_dir: Path, keyring: str) -> Path:
    """``keyring`` beside the definition; failing that, a shipped keyring of that name."""
    beside = (definition_dir / keyring).resolve()
    if beside.is_file() or Path(keyring).is_absolute():
        return beside
    shipped = (SNAPSHOTS_DIR / keyring).resolve()
    return shipped if shipped.is_file() else beside


def for_snapshot(snap: SnapshotLock) -> PackageFormat:
    """The distribution class of a locked snapshot: its archive's, when the
    definition is readable here, else its format's own (the lockfile records
    the format, not the distribution)."""
    try:
        archive = _cached_archive(snap.archive, search_dirs())
    except ArchiveError:
        return package_format(snap.format)
    return for_archive(archive) if archive.format == snap.format else package_format(snap.format)


@functools.lru_cache(maxsize=64)
def _cached_archive(name: str, dirs: tuple[Path, ...]) -> ArchiveDef:
    return load_archive(name, dirs)
