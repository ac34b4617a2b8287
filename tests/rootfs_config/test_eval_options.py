"""The new rootfs and disk arguments at evaluation: packages_from, file entries, keys."""

from __future__ import annotations

from pathlib import Path

from reprobuild import api
from reprobuild.stepspec import STEP_KINDS

SNAP = 'snapshot { archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ]; }'


def _eval(tmp_path: Path, body: str) -> dict:  # type: ignore[type-arg]
    recipe = tmp_path / "r.repro"
    recipe.write_text(f"let snap = {SNAP}; in {body}\n")
    return api.evaluate(recipe, strict=True).to_json()  # type: ignore[no-any-return]


def test_packages_from_is_read_at_evaluation(tmp_path: Path) -> None:
    (tmp_path / "list").write_text("# base\ntzdata netbase\n\nbash # again\n")
    data = _eval(
        tmp_path,
        'rootfs { snapshot = snap; packages = [ "bash" ]; packages_from = ./list; }',
    )
    assert data["packages"] == ["bash", "tzdata", "netbase"]
    assert data["packages_from"] == "./list"


def test_file_step_mode_travels_with_it(tmp_path: Path) -> None:
    data = _eval(
        tmp_path,
        'rootfs { snapshot = snap; files = { "/a" = file { text = "x"; mode = "0755"; }; '
        '"/b" = file { text = "y"; }; "/c" = { symlink = "/a"; }; }; }',
    )
    files = data["files"]
    assert files["/a"]["mode"] == "0755" and files["/a"]["source"]["kind"] == "file"
    assert files["/b"]["kind"] == "file"  # no mode given: as before
    assert files["/c"] == {"symlink": "/a"}


def test_new_arguments_leave_old_step_keys_alone(tmp_path: Path) -> None:
    """Not given, an argument added later is not in the step's parameters (keys, seeds)."""
    recipe = tmp_path / "r.repro"
    recipe.write_text(
        f"let snap = {SNAP}; root = rootfs {{ snapshot = snap; }}; in "
        '{ d = disk_image { inherit root; }; }\n'
    )
    plan = api.make_plan(recipe)
    later = {
        a.name for kind in ("rootfs", "disk_image") for a in STEP_KINDS[kind].args
        if a.only_when_given
    }
    assert {"locale", "grow_root", "packages_from", "apt_sources"} <= later
    for step in plan.steps.values():
        assert not later & set(step.param_data()), step.kind
