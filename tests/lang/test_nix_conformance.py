"""Nix's own language tests (tests/lang/nix/), against Nix 2.8's recorded answers.

``python3 tests/lang/nix_conformance.py`` runs the same cases and prints
"N of M Nix lang tests pass, K skipped (reasons)".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import nix_conformance as nc

# Seconds each (100,000-deep structures); run by `make test-long`.
SLOW = frozenset({"eval-fail-deepseq-stack-overflow", "eval-fail-toJSON-stack-overflow"})


def _check(names: list[str]) -> None:
    cases = nc.load_manifest()
    outcomes = [nc.run_case(n, cases[n]) for n in names]
    unexpected = [
        f"{o.name}: {o.detail}" for o in outcomes if o.passed == (o.name in nc.KNOWN_FAILURES)
    ]
    skipped = {n: e["skip"] for n, e in cases.items() if e.get("skip")}
    print(nc.summary(outcomes, skipped))
    assert not unexpected, "\n".join(unexpected)


def _run_names() -> list[str]:
    return sorted(n for n, e in nc.load_manifest().items() if not e.get("skip"))


def test_the_manifest_covers_every_upstream_case() -> None:
    cases = nc.load_manifest()
    assert len(cases) >= 400  # every eval-okay-*/eval-fail-* of Nix's tests/functional/lang
    for name, entry in cases.items():
        assert entry["kind"] in ("okay", "fail"), name
        if entry.get("skip"):
            assert entry["skip"].strip(), name
        else:
            assert (nc.CASES / f"{name}.nix").is_file(), name
            assert ("expected" in entry) == (entry["kind"] == "okay"), name
    run = [n for n, e in cases.items() if not e.get("skip")]
    assert len(run) >= 250


def test_nix_lang_conformance() -> None:
    _check([n for n in _run_names() if n not in SLOW])


@pytest.mark.slow
def test_nix_lang_conformance_deep_structures() -> None:
    _check([n for n in _run_names() if n in SLOW])
