"""No silent skips: in CI a skip fails the run unless tests/skip-allowlist.txt allows it.

A skipped test proves nothing, and a skip that CI accepts is coverage that can
vanish (a missing ``../shared``, a tool CI forgot to install, a snapshot that
aged out) while ``make test`` still exits 0. With ``CI`` set to a true value
(``.ci/run`` sets ``CI=true``), :func:`check` turns a skip whose reason the
allowlist does not match into a failure naming the reason and the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ALLOWLIST = Path(__file__).resolve().parents[1] / "skip-allowlist.txt"
CONDITIONS = {"nonroot": lambda: os.geteuid() != 0}


@dataclass(frozen=True)
class Entry:
    pattern: re.Pattern[str]
    condition: str | None

    def allows(self, reason: str) -> bool:
        if self.condition is not None and not CONDITIONS[self.condition]():
            return False
        return self.pattern.search(reason) is not None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def parse(text: str, what: str = "skip allowlist") -> tuple[Entry, ...]:
    entries = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        condition = None
        head, sep, rest = line.partition(":")
        if sep and head in CONDITIONS and rest.startswith(" "):
            condition, line = head, rest.strip()
        try:
            entries.append(Entry(re.compile(line, re.IGNORECASE), condition))
        except re.error as exc:
            raise ValueError(f"{what}:{n}: bad regular expression: {exc}") from None
    return tuple(entries)


@cache
def allowlist() -> tuple[Entry, ...]:
    return parse(ALLOWLIST.read_text(encoding="utf-8"), str(ALLOWLIST))


def allowed(reason: str) -> bool:
    return any(e.allows(reason) for e in allowlist())


def reason_of(longrepr: object) -> str:
    """The reason of a skip report (pytest keeps it as ``(path, line, 'Skipped: why')``)."""
    is_triple = isinstance(longrepr, tuple) and len(longrepr) == 3
    text = str(longrepr[2]) if is_triple else str(longrepr)  # type: ignore[index]
    return text.removeprefix("Skipped: ")


def where_of(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return f"{longrepr[0]}:{longrepr[1]}"
    return "?"


def verdict(report: object) -> str | None:
    """The failure message for a skip report that CI must not accept, else None."""
    if not in_ci() or not getattr(report, "skipped", False):
        return None
    if hasattr(report, "wasxfail"):
        return None  # an expected failure is reported as such, not as a skip
    longrepr = getattr(report, "longrepr", None)
    reason = reason_of(longrepr)
    if allowed(reason):
        return None
    return (
        f"skipped in CI (CI={os.environ.get('CI')}), and the reason is not on "
        f"{ALLOWLIST.relative_to(ALLOWLIST.parents[1])}: {reason!r} (at {where_of(longrepr)}). "
        "Install what the test needs in .ci/run (or provide ../shared), or, if the skip is "
        "legitimate in CI, add it to the allowlist with the reason why."
    )
