"""pytest plugin of ``make mutate`` (tests/support/mutate.py), loaded with ``-p``.

While mutmut records which test calls which function, the functions that a
subprocess of the test called (``python -m reprobuild``, recorded by the
``sitecustomize`` the driver writes) are added to the test that ran it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Before mutmut's own teardown hook files the test's calls."""
    hits = os.environ.get("MUTATE_HITS_DIR")
    if os.environ.get("MUTANT_UNDER_TEST") != "stats" or not hits:
        return
    from mutmut.state import state

    for path in Path(hits).iterdir():
        if path.suffix == ".tmp":
            continue
        state()._stats.update(n for n in path.read_text().splitlines() if n)
        path.unlink()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Empty every memo of the package before a mutant's tests run.

    mutmut forks each mutant's run from a process that has already run the
    tests, so a ``functools.lru_cache`` would answer from the original code
    and hide the mutant of a function it calls (dpkg's character weights
    behind the cached version segments, for one)."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("reprobuild") or module is None:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()


_NOT_A_MUTANT = {"", "stats", "fail", "list_all_tests", "mutant_generation"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """While a mutant is tested, run its fastest tests first.

    mutmut stops at the first failing test (``-x``); most mutants are killed
    by a quick in-process test long before a test that starts the command."""
    if os.environ.get("MUTANT_UNDER_TEST", "") in _NOT_A_MUTANT:
        return
    stats = Path("mutmut-stats.json")
    if not stats.exists():
        return
    durations: dict[str, float] = json.loads(stats.read_text())["duration_by_test"]
    items.sort(key=lambda item: durations.get(item.nodeid, 0.0))
