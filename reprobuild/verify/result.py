"""What ``reprobuild verify`` found: the verdict, its provenance, every differing path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprobuild.verify.compare import PathDifference, Summary

__all__ = ["VerifyResult", "locked_debs"]


@dataclass(frozen=True)
class VerifyResult:
    target: str
    target_digest: str
    rebuilt_digest: str
    identical: bool
    method: str  # "reprobuild referrers" or "debuerreotype"
    provenance: dict[str, Any]
    summary: Summary
    differences: tuple[PathDifference, ...] = ()
    notes: tuple[str, ...] = ()
    recipe: str = ""
    rebuilt: str = ""  # path of the rebuilt artifact (removed with the work directory)
    compared: dict[str, str] = field(default_factory=dict)  # what the digests are of

    @property
    def verdict(self) -> str:
        return "identical" if self.identical else "differs"

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdict": self.verdict,
            "identical": self.identical,
            "target_digest": self.target_digest,
            "rebuilt_digest": self.rebuilt_digest,
            "compared": dict(self.compared),
            "method": self.method,
            "provenance": self.provenance,
            "summary": {
                "identical": self.summary.identical,
                "total": self.summary.total,
                "percent": round(self.summary.percent, 2),
                "line": self.summary.line(),
            },
            "differences": [d.to_json() for d in self.differences],
            "notes": list(self.notes),
            "recipe": self.recipe,
        }

    def render(self, limit: int = 50) -> str:
        lines = [
            f"target   {self.target}",
            f"made by  {self.method}: "
            + ", ".join(
                f"{k} {_show(v)}" for k, v in self.provenance.items() if v not in (None, [], "")
            ),
            f"digest   {self.target_digest}  ({self.compared.get('target', 'target')})",
            f"rebuilt  {self.rebuilt_digest}  ({self.compared.get('rebuilt', 'rebuild')})",
        ]
        lines += [f"note     {n}" for n in self.notes]
        for d in self.differences[:limit]:
            what = d.change if not d.fields else f"{d.change} ({', '.join(d.fields)})"
            lines.append(f"{d.path}: {what}: {d.cause}: {d.explanation}")
            if d.first_difference:
                f = d.first_difference
                lines.append(
                    f"  first difference at byte {f['offset']}: image {f['image'] or '(end)'} "
                    f"rebuild {f['rebuild'] or '(end)'}"
                )
        if len(self.differences) > limit:
            lines.append(f"... and {len(self.differences) - limit} more (--json lists them all)")
        lines.append(self.summary.line())
        lines.append(self.verdict)
        return "\n".join(lines)


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def locked_debs(lock: Any, store_path: Path | None) -> dict[str, Path]:
    """The locked packages' files in the store (fetched by the rebuild)."""
    from reprobuild.store import Store

    out: dict[str, Path] = {}
    with Store.open_store(store_path, create=False) as store:
        for p in lock.packages:
            if store.has(p.sha256):
                out[p.name] = store.path_of(p.sha256)
    return out
