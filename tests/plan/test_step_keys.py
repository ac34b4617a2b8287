"""Step keys are a contract: every store, cache and lockfile is keyed by them.

A change of a step's key (its parameters' canonical JSON, the versions that
shape its output, the keys of its inputs) makes every cached result unusable
and every lockfile's step reference stale, so it must be a visible, reviewed
event, like a change of output bytes (tests/golden). The keys below are those
of the demo recipe as written here; the snapshot's is also the one
``recipes/demo.repro.lock`` records. Change them deliberately, saying why in
the commit.
"""

from __future__ import annotations

from pathlib import Path

from reprobuild import api

DEMO = """\
let
  snap = snapshot {
    archive = "debian"; date = "2026-07-11T10:16:37Z"; suites = [ "bookworm" ];
    components = [ "main" ]; arch = "amd64";
  };
  root = rootfs {
    snapshot = snap;
    variant = "none";
    packages = [ "busybox-static" "base-files" "netbase" "tzdata" "dpkg" "dash" "coreutils"
                 "sed" "grep" "findutils" "diffutils" "perl-base" "libc-bin" "base-passwd" ];
    files = { "/etc/motd" = "built by reprobuild\\n"; };
  };
in
{
  oci = oci_image { inherit root; entrypoint = [ "/bin/busybox" "sh" ]; tag = "reprobuild-demo:bookworm"; };
  tarball = tarball { inherit root; compression = "zstd"; };
  iso = iso9660 { inherit root; volume_id = "REPRODEMO"; };
}
"""

KEYS = [
    ("snapshot", "snap", "64cf875d2dfa387ab53917c27c44d8a6a60665a27e270a3890414d296aba72c4"),
    ("rootfs", "root", "799a845bfca9f7136e6273742ef1587500e62c877f1375764fbbc3381d85c3ed"),
    ("iso9660", "iso", "4f3a67eeb19d3d11cece65b0550f7943ef4e71cb0b7532daa8b71f256f8bde85"),
    ("oci_image", "oci", "ff2ea8dda2c5efd1e124bf03bf088fa69413657d6b8b37925336cb5982cf6c26"),
    ("tarball", "tarball", "fbc8c8484cd8da68185113f157dfbb7ce4a2a5f2359d3ee890eda38b823e53a0"),
]


def test_the_demo_recipe_has_the_recorded_step_keys(tmp_path: Path) -> None:
    recipe = tmp_path / "demo.repro"
    recipe.write_text(DEMO)
    plan = api.make_plan(recipe)
    assert [(s.kind, s.name, s.key) for s in plan.order()] == KEYS
    outputs = {"iso", "oci", "tarball"}
    assert dict(plan.outputs) == {name: key for _, name, key in KEYS if name in outputs}


def test_the_command_prints_the_same_keys(tmp_path: Path) -> None:
    """In a fresh process: the step kinds' argument tables are built at import,
    so a step argument that changed keys would show here."""
    import json

    from tests.support.cli import reprobuild

    (tmp_path / "demo.repro").write_text(DEMO)
    r = reprobuild(tmp_path, "graph", "--format", "json", "demo.repro")
    assert r.returncode == 0, r.stderr
    steps = json.loads(r.stdout)["steps"]
    assert [(s["kind"], s["name"], s["key"]) for s in steps] == KEYS
    root = next(s for s in steps if s["kind"] == "rootfs")
    assert "hosts" not in root["params"]  # an argument added later, not given
