"""Step graph: content-addressed keys, names, cycles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.errors import EvalError, PlanError

SNAP = 'snapshot { archive = "debian"; date = "2026-07-11"; suites = [ "bookworm" ]; }'


def write(tmp: Path, text: str, name: str = "r.repro") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def test_keys_are_stable_and_content_addressed(tmp_path: Path) -> None:
    a = write(
        tmp_path, f"let s = {SNAP}; in {{ t = tarball {{ root = rootfs {{ snapshot = s; }}; }}; }}"
    )
    p1 = api.make_plan(a)
    p2 = api.make_plan(a)
    assert [s.key for s in p1.order()] == [s.key for s in p2.order()]
    assert [s.kind for s in p1.order()] == ["snapshot", "rootfs", "tarball"]
    # The same recipe elsewhere, with other variable names, gives the same keys.
    other = tmp_path / "elsewhere"
    other.mkdir()
    b = write(
        other,
        f"let q = {SNAP}; r = rootfs {{ snapshot = q; }}; in {{ t = tarball {{ root = r; }}; }}",
    )
    assert dict(api.make_plan(b).outputs) == dict(p1.outputs)
    # A changed parameter changes the key of the step and of everything after it.
    c = write(
        tmp_path,
        f'let s = {SNAP}; in {{ t = tarball {{ root = rootfs {{ snapshot = s; packages = [ "bash" ]; }}; }}; }}',
        "c.repro",
    )
    pc = api.make_plan(c)
    assert pc.order()[0].key == p1.order()[0].key
    assert pc.order()[1].key != p1.order()[1].key
    assert dict(pc.outputs)["t"] != dict(p1.outputs)["t"]


def test_shared_step_appears_once(tmp_path: Path) -> None:
    r = write(
        tmp_path,
        f"let root = rootfs {{ snapshot = {SNAP}; }}; in {{ a = tarball {{ inherit root; }}; b = cpio {{ inherit root; }}; }}",
    )
    p = api.make_plan(r)
    assert len(p.steps) == 4
    names = {s.name for s in p.steps.values()}
    assert {"a", "b", "root"} <= names
    assert p.graph.number_of_edges() == 3


def test_file_content_is_part_of_the_key(tmp_path: Path) -> None:
    (tmp_path / "motd").write_text("one\n")
    r = write(
        tmp_path,
        f'{{ t = tarball {{ root = rootfs {{ snapshot = {SNAP}; files = {{ "/etc/motd" = ./motd; }}; }}; }}; }}',
    )
    k1 = dict(api.make_plan(r).outputs)["t"]
    (tmp_path / "motd").write_text("two\n")
    k2 = dict(api.make_plan(r).outputs)["t"]
    assert k1 != k2


def test_cycle_is_an_error_naming_the_steps(tmp_path: Path) -> None:
    r = write(
        tmp_path,
        f"let s = {SNAP}; a = rootfs {{ snapshot = s; base = b; }}; "
        "b = rootfs { snapshot = s; base = a; }; in { out = tarball { root = a; }; }",
    )
    with pytest.raises(PlanError) as info:
        api.make_plan(r)
    msg = info.value.message
    assert "cycle" in msg and "rootfs 'a'" in msg and "rootfs 'b'" in msg
    assert info.value.hint == "a step cannot use its own result, directly or through other steps"


def test_argument_type_errors_point_at_the_argument(tmp_path: Path) -> None:
    r = write(
        tmp_path,
        f'{{ t = tarball {{ root = rootfs {{ snapshot = {SNAP}; packages = "bash"; }}; }}; }}',
    )
    with pytest.raises(EvalError) as info:
        api.make_plan(r)
    assert "argument 'packages' of rootfs must be a list of strings" in info.value.message
    assert info.value.span is not None and info.value.span.column > 1


def test_wrong_step_kind(tmp_path: Path) -> None:
    r = write(tmp_path, f"{{ t = tarball {{ root = {SNAP}; }}; }}")
    with pytest.raises(EvalError, match="must be a rootfs or run step, not a snapshot step"):
        api.make_plan(r)


def test_bad_choice(tmp_path: Path) -> None:
    r = write(
        tmp_path,
        f'{{ t = tarball {{ root = rootfs {{ snapshot = {SNAP}; }}; compression = "lz4"; }}; }}',
    )
    with pytest.raises(EvalError, match='must be one of "none", "gzip", "zstd", "xz"'):
        api.make_plan(r)


def test_fetchurl_sha256_checked(tmp_path: Path) -> None:
    r = write(tmp_path, '{ f = fetchurl { url = "https://example.org/x"; sha256 = "abc"; }; }')
    with pytest.raises(EvalError, match="64 lowercase hexadecimal"):
        api.make_plan(r)


def test_import_stays_in_tree(tmp_path: Path) -> None:
    sub = tmp_path / "recipe"
    sub.mkdir()
    (tmp_path / "secret.repro").write_text("1")
    r = write(sub, "import ../secret.repro")
    with pytest.raises(EvalError, match="leaves the directory tree"):
        api.evaluate(r, strict=True)
    (sub / "link.repro").symlink_to(tmp_path / "secret.repro")
    r2 = write(sub, "import ./link.repro", "r2.repro")
    with pytest.raises(EvalError, match="leaves the directory tree"):
        api.evaluate(r2, strict=True)


def test_graph_renderers(tmp_path: Path) -> None:
    r = write(tmp_path, f"{{ t = tarball {{ root = rootfs {{ snapshot = {SNAP}; }}; }}; }}")
    text = api.graph(r, "text")
    assert text.splitlines()[0].startswith("3 steps, 1 outputs")
    assert api.graph(r, "dot") == api.graph(r, "dot")
    assert '"steps"' in api.graph(r, "json")


def test_renderers_show_every_step_in_name_order(tmp_path: Path) -> None:
    r = write(
        tmp_path,
        f'let s = {SNAP}; base = rootfs {{ snapshot = s; name = "foundation"; }}; in {{ '
        "ab = tarball { root = base; }; aa = cpio { root = base; }; "
        'mm = tarball { root = base; compression = "xz"; }; }',
    )
    p = api.make_plan(r)
    order = p.order()
    # name order is not the keys' order here: ab's key sorts after mm's
    assert sorted(s.key for s in order[2:]) != [s.key for s in order[2:]]
    assert [s.name for s in order] == ["s", "foundation", "aa", "ab", "mm"]
    key = {s.name: s.key for s in order}
    key["base"] = key["foundation"]
    short = {n: k[:12] for n, k in key.items()}
    short["snap"], key["snap"] = short["s"], key["s"]
    assert api.graph(r, "text") == "\n".join(
        [
            f"5 steps, 3 outputs ({p.recipe})",
            f"{short['snap']}  snapshot    s",
            f"{short['base']}  rootfs      foundation  <- s",
            f"{short['aa']}  cpio        aa  <- foundation",
            f"{short['ab']}  tarball     ab  <- foundation",
            f"{short['mm']}  tarball     mm  <- foundation",
            "outputs:",
            f"  aa: {short['aa']}",
            f"  ab: {short['ab']}",
            f"  mm: {short['mm']}",
        ]
    )
    dot = api.graph(r, "dot").splitlines()
    assert dot[:3] == [
        "digraph steps {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
    ]
    assert f'  "{short["base"]}" [label="rootfs\\nfoundation\\n{short["base"]}"];' in dot
    edges = [ln for ln in dot if "->" in ln]
    assert edges == [
        f'  "{short[a]}" -> "{short[b]}";'
        for a, b in [("base", "aa"), ("base", "ab"), ("base", "mm"), ("snap", "base")]
    ]
    assert dot[-1] == "}"
    data = json.loads(api.graph(r, "json"))
    assert data["outputs"] == {n: key[n] for n in ("aa", "ab", "mm")}
    first = data["steps"][1]
    assert first == {
        "key": key["base"],
        "kind": "rootfs",
        "name": "foundation",
        "inputs": [key["snap"]],
        "params": first["params"],
        "location": f"{r}:1:{p.steps[key['base']].location.rsplit(':', 1)[1]}",
    }
    assert "name" not in first["params"]  # the display name is not part of the key
    assert first["location"].startswith(f"{r}:1:")


def test_a_recipe_file_and_directory_are_keyed_by_content(tmp_path: Path) -> None:
    """A file input by its sha256; a directory by the sha256 of its listing:
    relative path, type, executable bit and content hash (plan._hash_tree)."""
    import hashlib

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def params(recipe: Path) -> tuple[dict[str, object], dict[str, object]]:
        steps = api.make_plan(recipe).order()
        root = next(s for s in steps if s.kind == "rootfs").param_data()
        run = next(s for s in steps if s.kind == "run").param_data()
        return root, run

    for where in ("a", "b"):
        d = tmp_path / where
        (d / "overlay" / "etc").mkdir(parents=True)
        (d / "overlay" / "etc" / "motd").write_text("hi\n")
        (d / "overlay" / "run.sh").write_text("echo\n")
        (d / "overlay" / "run.sh").chmod(0o755)
        (d / "overlay" / "lib").symlink_to("etc")  # a link to a directory: listed, not walked
        (d / "motd").write_text("one\n")
        write(
            d,
            f"{{ t = tarball {{ root = run {{ root = rootfs {{ snapshot = {SNAP}; "
            'files = { "/etc/motd" = ./motd; }; }; script = "true"; '
            "inputs = { overlay = ./overlay; }; }; }; }",
        )
    listing = (
        "l lib etc\n"
        f"f run.sh x {sha(b'echo' + bytes([10]))}\n"
        "d .\n"
        f"f etc/motd - {sha(b'hi' + bytes([10]))}\n"
        "d etc\n"
    )
    root, run = params(tmp_path / "a" / "r.repro")
    assert root["files"] == {"/etc/motd": {"path": "./motd", "sha256": sha(b"one\n")}}
    assert run["inputs"] == {"overlay": {"path": "./overlay", "tree-sha256": sha(listing.encode())}}
    assert params(tmp_path / "b" / "r.repro") == (root, run)  # the same tree elsewhere
    (tmp_path / "b" / "overlay" / "run.sh").chmod(0o644)  # the executable bit counts
    assert params(tmp_path / "b" / "r.repro")[1] != run


def test_a_fifo_in_a_recipe_directory_is_refused_unread(tmp_path: Path) -> None:
    import os

    (tmp_path / "overlay").mkdir()
    os.mkfifo(tmp_path / "overlay" / "pipe")
    r = write(
        tmp_path,
        f"{{ t = tarball {{ root = run {{ root = rootfs {{ snapshot = {SNAP}; }}; "
        'script = "true"; inputs = { overlay = ./overlay; }; }; }; }',
    )
    with pytest.raises(Exception, match="a recipe's file input") as info:
        api.make_plan(r)
    assert getattr(info.value, "exit_code", None) == 2
