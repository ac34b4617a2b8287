"""Typed step parameters (reprobuild/stepparams.py): the dataclasses agree with the
table of step kinds, and every step of the committed recipes reads back as its
kind's dataclass with the values its JSON (what the keys hash) holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reprobuild import api, lockfile
from reprobuild.buildgraph import expand
from reprobuild.stepparams import (
    FetchParams,
    OciImageParams,
    RootfsParams,
    StepRef,
    TarballParams,
    check_table,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_dataclasses_match_the_table() -> None:
    assert check_table() == []


@pytest.mark.parametrize("recipe", ["demo", "debian-debuerreotype"])
def test_every_step_of_a_recipe_is_typed(recipe: str) -> None:
    path = ROOT / "recipes" / f"{recipe}.repro"
    plan = api.make_plan(path)
    graph = expand(plan, lockfile.load(path.with_suffix(".repro.lock")), 0)
    kinds = set()
    for step in graph.order():
        params = step.params
        kinds.add(type(params).__name__)
        if isinstance(params, FetchParams):
            assert params.package is not None and params.package.sha256 == step.key
            continue
        raw = step.data.get("params") or {}
        for f in dataclasses.fields(params):
            value = getattr(params, f.name)
            if f.name in raw and isinstance(value, str | bool | int):
                assert value == raw[f.name], (step.name, f.name)
            if isinstance(value, StepRef):
                assert value.key in step.inputs  # an input, by its effective key
        if isinstance(params, RootfsParams):
            assert params.packages == tuple(raw.get("packages") or ())
    assert {"RootfsParams", "FetchParams"} <= kinds
    assert kinds & {OciImageParams.__name__, TarballParams.__name__}


def test_a_runner_gets_its_own_kind() -> None:
    path = ROOT / "recipes" / "demo.repro"
    graph = expand(api.make_plan(path), lockfile.load(path.with_suffix(".repro.lock")), 0)
    rootfs = next(s for s in graph.order() if s.kind == "rootfs")
    assert rootfs.params_as(RootfsParams) is rootfs.params
    with pytest.raises(TypeError, match="not TarballParams"):
        rootfs.params_as(TarballParams)
