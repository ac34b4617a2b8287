"""Recorded output digests are evidence: a build never overwrites them silently.

Two organizations sharing a lockfile compare their builds through the
digests it records. A plain ``build`` that makes different bytes therefore
fails (exit 1, like ``--locked``) with the recorded and the built digest of
each output, and, when the recorded artifact is in the store, what differs;
only ``build --record`` or ``lock --update`` replaces them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from reprobuild.errors import CheckFailed, ReprobuildError


class _Built(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def path(self) -> Path: ...


class DigestsChanged(CheckFailed):
    """A build made outputs whose digests differ from those the lockfile records."""

    def __init__(self, message: str, *, hint: str, names: Sequence[str]) -> None:
        super().__init__(message, hint=hint)
        self.names = tuple(names)


def refuse_changed_digests(
    store: Any,
    recorded: Mapping[str, Mapping[str, Any]],
    built: Sequence[_Built],
    lock_file: Path,
    *,
    locked: bool,
) -> None:
    """Raise :class:`DigestsChanged` when a built output differs from its record."""
    differs = [
        o for o in built if o.name in recorded and recorded[o.name].get("sha256") != o.sha256
    ]
    if not differs:
        return
    lines = []
    for o in sorted(differs, key=lambda o: o.name):
        was = recorded[o.name].get("sha256")
        lines.append(f"  {o.name}: recorded sha256:{was}")
        lines.append(f"  {' ' * len(o.name)}  built    sha256:{o.sha256}  ({o.path})")
        detail = _what_differs(store, str(was), o)
        if detail:
            lines += ["      " + line for line in detail.splitlines()]
    names = sorted(o.name for o in differs)
    verb = "differs" if len(names) == 1 else "differ"
    head = (
        "not reproduced: " + ", ".join(names) + f" {verb} from the lockfile's record"
        if locked
        else f"{', '.join(names)} {verb} from the digest recorded in {lock_file}"
    )
    raise DigestsChanged(
        head + " (the lockfile was left as it is):\n" + "\n".join(lines),
        hint="the recorded digests are the evidence others compare with; if the new bytes "
        "are intended, record them with 'reprobuild build --record' (or re-resolve with "
        "'reprobuild lock --update'); 'reprobuild diff' explains differences between two "
        "artifacts",
        names=names,
    )


def _what_differs(store: Any, recorded: str, built: _Built) -> str:
    """A few lines of diff when the recorded artifact is still in this store."""
    if len(recorded) != 64 or not store.has(recorded) or not store.has(built.sha256):
        return ""
    try:
        from reprobuild.diff import compare, render_text
    except ImportError:  # pragma: no cover - diff ships with reprobuild
        return ""
    try:
        difference = compare(store.path_of(recorded), store.path_of(built.sha256))
    except ReprobuildError as exc:
        return f"could not compare: {exc.message}"
    except OSError:
        return ""
    if difference is None:
        return ""
    return "\n".join(render_text(difference).splitlines()[:12])
