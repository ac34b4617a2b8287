"""The command line as a user meets it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_eval_json_of_demo(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("eval", "--json", "recipes/demo.repro")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert sorted(data) == ["iso", "oci", "tarball"]
    assert data["oci"]["kind"] == "oci_image"
    assert data["oci"]["root"]["kind"] == "rootfs"
    assert data["oci"]["root"]["snapshot"]["archive"] == "debian"
    assert data["tarball"]["compression"] == "zstd"


def test_eval_plain(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "r.repro"
    f.write_text('{ b = [ 1 "x" ]; a = null; "c d" = true; }\n')
    r = run_cli("eval", str(f))
    assert r.returncode == 0, r.stderr
    assert r.stdout == '{ a = null; b = [ 1 "x" ]; "c d" = true; }\n'


def test_error_has_location_caret_and_no_traceback(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.repro"
    f.write_text("let\n  x = 1;\nin\n  x + y\n")
    r = run_cli("eval", str(f))
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines[0] == f"{f}:4:7: error: undefined variable 'y'"
    assert lines[1] == "      x + y"
    assert lines[2] == "          ^"
    assert "Traceback" not in r.stderr


def test_eval_trace_frames(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "t.repro"
    f.write_text('let s = { a = { b = throw "deep"; }; }; in s.a.b\n')
    r = run_cli("eval", str(f))
    assert r.returncode == 2
    assert "error: deep" in r.stderr
    assert "while evaluating the attribute 'b'" in r.stderr


def test_syntax_error_exit_2(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "s.repro"
    f.write_text("{ a = 1 }\n")
    r = run_cli("eval", "--json", str(f))
    assert r.returncode == 2
    assert r.stderr.startswith(f"{f}:1:9: error: syntax error, unexpected '}}'")
    assert "Traceback" not in r.stderr


def test_missing_file_and_usage(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("eval", str(tmp_path / "nope.repro"))
    assert r.returncode == 2
    assert "cannot read" in r.stderr
    r = run_cli("frobnicate")
    assert r.returncode == 2
    r = run_cli("--help")
    assert r.returncode == 0
    assert "graph" in r.stdout and "fmt" in r.stdout and "eval" in r.stdout


def test_not_utf8(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "b.repro"
    f.write_bytes(b"\xff\xfe{}")
    r = run_cli("eval", str(f))
    assert r.returncode == 2
    assert "not UTF-8" in r.stderr


def test_fmt_check_exit_codes(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "r.repro"
    f.write_text("{a=1;}")
    r = run_cli("fmt", "--check", str(f))
    assert r.returncode == 1
    assert "would reformat" in r.stderr
    r = run_cli("fmt", str(f))
    assert r.returncode == 0
    r = run_cli("fmt", "--check", str(f))
    assert r.returncode == 0
    assert f.read_text() == "{ a = 1; }\n"


def test_graph_text_and_dot(run_cli) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("graph", "recipes/demo.repro")
    assert r.returncode == 0, r.stderr
    assert "rootfs" in r.stdout and "snapshot" in r.stdout
    r2 = run_cli("graph", "--format", "dot", "recipes/demo.repro")
    assert r2.returncode == 0
    assert r2.stdout.startswith("digraph steps {")
    assert r2.stdout.count("->") == 4


def test_debug_shows_traceback(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.repro"
    f.write_text("x")
    r = run_cli("--debug", "eval", str(f))
    assert r.returncode == 2
    assert "Traceback" in r.stderr
