"""Hostile recipes: a recipe cannot read outside its tree, cannot run commands
while it is evaluated, and cannot exhaust memory or time (issue 8).

Each refusal is a project error (exit 2 from the CLI) located at
file:line:col with a caret, and each resource limit names the environment
variable that raises it. Limits are set low here so every case is quick.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reprobuild import api
from reprobuild.errors import (
    EvalError,
    EvalLimitExceeded,
    ImportEscapes,
    ParseError,
    RecipeError,
    ReprobuildError,
    UsageError,
)
from reprobuild.lang.evaluate import Evaluator
from reprobuild.lang.fmt import format_source
from reprobuild.lang.limits import EvalLimits
from reprobuild.lang.parse import parse
from tests.support.cli import reprobuild

SMALL = {
    "REPROBUILD_MAX_DEPTH": "2000",
    "REPROBUILD_MAX_NESTING": "200",
    "REPROBUILD_MAX_STRING": "100000",
    "REPROBUILD_MAX_LIST": "10000",
    "REPROBUILD_MAX_STEPS": "300000",
}


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SMALL.items():
        monkeypatch.setenv(k, v)


def _fail(tmp: Path, text: str, name: str = "main.repro") -> RecipeError:
    f = tmp / name
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    with pytest.raises(RecipeError) as info:
        api.evaluate(f, strict=True).to_json()
    return info.value


def _located(err: RecipeError, line: int, col: int) -> str:
    """The rendered error, after checking it points at line:col with a caret."""
    assert err.span is not None, err.render()
    assert (err.span.line, err.span.column) == (line, col), err.render()
    text = err.render()
    src, caret = text.splitlines()[1:3]
    assert caret == "    " + " " * (col - 1) + "^"
    assert src.startswith("    ")
    return text


# -- nothing outside the tree ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "col"),
    [
        ("./../../etc/passwd", 1),
        ("{ a = ./x/../../../etc/passwd; }", 7),
        ('./. + "/../../etc/passwd"', 5),
        ('./sub + "/../.."', 7),
        ('import (./. + "/../outside.repro")', 13),
        ('file { path = ./. + "/.."; }', 19),
    ],
)
def test_path_arithmetic_cannot_leave_the_tree(tmp_path: Path, text: str, col: int) -> None:
    (tmp_path / "outside.repro").write_text("1")
    err = _fail(tmp_path / "r", text)
    assert isinstance(err, ImportEscapes)
    assert "leaves the directory tree" in _located(err, 1, col)


def test_symbolic_links_out_of_the_tree_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("1")
    (secret / "lib.repro").write_text("1")
    r = tmp_path / "r"
    r.mkdir()
    (r / "key").symlink_to(secret / "key")
    (r / "dir").symlink_to(secret)
    (r / "inside").write_text("fine")
    (r / "alias").symlink_to("inside")  # a link that stays inside is fine
    cases = [
        ("./key", 1),
        ("./dir", 1),
        ("./dir/key", 1),
        ("import ./dir/lib.repro", 8),
        ("import ./dir", 8),
        ('import (./. + "/dir/lib.repro")', 13),
        ("file { path = ./key; }", 15),
        ("{ x = file { path = ./dir; }; }.x", 21),
        ('run { root = rootfs { snapshot = snapshot { archive = "a"; date = "d"; }; }; '
         'script = "true"; inputs.k = ./key; }', 106),
    ]
    for text, col in cases:
        err = _fail(r, text)
        assert isinstance(err, ImportEscapes), (text, err.render())
        assert "symbolic link" in _located(err, 1, col)
    ok = r / "ok.repro"
    ok.write_text("[ ./alias ./inside ]")
    assert api.evaluate(ok, strict=True).to_json() == ["./alias", "./inside"]


@pytest.mark.parametrize(
    "text",
    ["/etc/passwd", "~/.ssh/id_rsa", "<nixpkgs>", 'import "/etc/passwd"', "import /etc"],
)
def test_absolute_home_and_search_paths_are_refused(tmp_path: Path, text: str) -> None:
    err = _fail(tmp_path, text)
    assert isinstance(err, ParseError | EvalError)
    assert err.span is not None and err.span.line == 1


def test_a_path_with_a_nul_is_refused(tmp_path: Path) -> None:
    err = _fail(tmp_path, './a + builtins.fromJSON "\\"\\\\u0000\\""')
    assert "NUL" in _located(err, 1, 5)


# -- nothing runs at evaluation time ---------------------------------------------

# Every builtin, by name: a new one must be added here on purpose, after
# checking it neither runs a command nor reads outside the recipe's tree.
PURE_BUILTINS = {
    "abort", "attrNames", "attrValues", "concatStringsSep", "elem", "false", "filter",
    "foldl'", "fromJSON", "getAttr", "hasAttr", "head", "import", "length", "listToAttrs",
    "map", "mapAttrs", "null", "tail", "throw", "toJSON", "toString", "trace", "true",
    "builtins",
    # issue 15: pure builtins recipe authors reach for
    "elemAt", "concatLists", "concatMap", "genList", "sort", "any", "all", "replaceStrings",
    "substring", "stringLength", "split", "match", "removeAttrs", "intersectAttrs",
    "catAttrs", "typeOf", "isAttrs", "isList", "isString", "isInt", "isBool", "isFunction",
    "isNull", "seq", "deepSeq", "tryEval", "lessThan", "baseNameOf", "dirOf", "hashString",
    "partition", "groupBy", "zipAttrsWith", "add", "sub", "mul", "div", "bitAnd", "bitOr",
    "bitXor", "isFloat", "isPath", "ceil", "floor", "genericClosure", "functionArgs",
    "compareVersions", "splitVersion", "parseDrvName",
    # read files, but only inside the recipe's tree (test_file_builtins_stay_in_the_tree)
    "readFile", "pathExists",
}  # fmt: skip


def test_the_builtins_run_nothing(tmp_path: Path) -> None:
    from reprobuild.stepspec import STEP_KINDS

    ev = Evaluator(tmp_path)
    builtins_set = ev.force(ev.base_env.vars["builtins"])
    names = set(builtins_set.attrs)  # type: ignore[union-attr]
    # Step constructors only describe work for the planner: nothing runs.
    assert names - set(STEP_KINDS) == PURE_BUILTINS
    for kind in STEP_KINDS:
        f = tmp_path / f"{kind}.repro"
        f.write_text(f'builtins.getEnv ({kind} {{ }})')
        with pytest.raises(EvalError, match="attribute 'getEnv' missing"):
            api.evaluate(f, strict=True)
    for name in ("exec", "readDir", "getEnv", "currentTime",
                 "fetchGit", "__import__", "system", "storePath", "scopedImport"):  # fmt: skip
        err = _fail(tmp_path, f"builtins.{name}")
        assert f"attribute '{name}' missing" in _located(err, 1, 9)
    for name in ("exec", "__import__", "eval", "open", "system"):
        err = _fail(tmp_path, f'{name} "id"')
        assert f"undefined variable '{name}'" in _located(err, 1, 1)


def test_file_builtins_stay_in_the_tree(tmp_path: Path) -> None:
    """readFile and pathExists read only inside the recipe's tree, like import."""
    outside = tmp_path / "secret"
    outside.write_text("s3cret")
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "out").symlink_to(outside)
    (tree / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(tree / "fifo")
    main = "tree/main.repro"
    err = _fail(tmp_path, 'builtins.readFile "/etc/passwd"', main)
    assert "while a path was expected" in _located(err, 1, 1)
    err = _fail(tmp_path, 'builtins.pathExists "/etc/passwd"', main)
    assert "while a path was expected" in _located(err, 1, 1)
    err = _fail(tmp_path, "builtins.readFile ./out", main)
    assert isinstance(err, ImportEscapes) and "symbolic link" in _located(err, 1, 19)
    err = _fail(tmp_path, "builtins.pathExists ./../secret", main)
    assert isinstance(err, ImportEscapes)
    err = _fail(tmp_path, "builtins.readFile (dirOf ./.)", main)
    assert isinstance(err, ImportEscapes)
    # A FIFO would block a plain open(): it is refused without reading.
    err = _fail(tmp_path, "builtins.readFile ./fifo", main)
    assert "not a regular file" in _located(err, 1, 1)
    err = _fail(tmp_path, "builtins.readFile ./.", main)
    assert "directory" in _located(err, 1, 1)


def test_a_step_in_a_recipe_runs_nothing_at_evaluation(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    f = tmp_path / "main.repro"
    f.write_text(
        'let s = snapshot { archive = "debian"; date = "20240101T000000Z"; }; in '
        f'run {{ root = rootfs {{ snapshot = s; }}; script = "touch {canary}"; }}'
    )
    data = api.evaluate(f, strict=True).to_json()
    assert data["kind"] == "run"
    assert not canary.exists()


# -- limits ------------------------------------------------------------------------


@pytest.mark.usefixtures("small_limits")
@pytest.mark.parametrize(
    ("text", "limit", "line", "col"),
    [
        # deep non-tail recursion (the example)
        # (a call in tail position takes no level, so the limit is met forcing `n - 1`)
        ("let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 1000000", "MAX_DEPTH", 1, 41),
        # infinite recursion through a builtin and through a functor
        ("let f = n: builtins.head (map (x: 1 + f n) [1]); in f 0", "MAX_DEPTH", 1, 12),
        ("let f = { __functor = s: x: 1 + f 1; }; in f 1", "MAX_DEPTH", 1, 29),
        # deep data, compared, printed, converted
        ("let f = n: [ (f (n + 1)) ]; in f 0 == f 0", "MAX_DEPTH", 1, 15),
        ("let f = n: [ (f (n + 1)) ]; in toString (f 0)", "MAX_DEPTH", 1, 15),
        # deep data cannot be output: printers and encoders recurse over it
        ("let f = n: [ (f (n + 1)) ]; in builtins.toJSON (f 0)", "MAX_NESTING", 1, 32),
        ("let f = n: if n == 0 then [] else [ (f (n - 1)) ]; in { x = f 1000; }",
         "MAX_NESTING", 0, 0),
        # string doubling
        ('let d = s: n: if n == 0 then s else d (s + s) (n - 1); in d "x" 64', "MAX_STRING",
         1, 42),
        ('let d = s: n: if n == 0 then s else d "${s}${s}" (n - 1); in d "x" 64', "MAX_STRING",
         1, 39),
        ('let d = n: if n == 0 then ["xxxxxxxxxxxxxxxx"] else let l = d (n - 1); in l ++ l; '
         'in builtins.concatStringsSep "" (d 13)', "MAX_STRING", 1, 86),
        # list doubling
        ("let d = l: n: if n == 0 then l else d (l ++ l) (n - 1); in d [ 1 ] 64", "MAX_LIST",
         1, 42),
        # exponential time, no deep recursion, no big value
        ("let f = n: if n == 0 then 0 else f (n - 1) + f (n - 1); in f 64", "MAX_STEPS",
         1, 1),
        # a regular expression with exponential search (as in libstdc++), and one
        # recursing once per character of a long string
        ('builtins.match "((a?)*)*b" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"', "MAX_STEPS", 1, 1),
        ('builtins.match "(.*)" (builtins.concatStringsSep "" (builtins.genList (i: "ab") '
         "5000))", "MAX_DEPTH", 1, 1),
        # exponential data through sharing: [a a] 64 times over
        ("let f = a: n: if n == 0 then a else f [ a a ] (n - 1); in builtins.toJSON (f [1] 64)",
         "MAX_STRING", 1, 59),
        ("let f = n: if n == 0 then [1] else let a = f (n - 1); in [ a a ]; "
         "g = n: if n == 0 then [1] else let a = g (n - 1); in [ a a ]; in f 64 == g 64",
         "MAX_STEPS", 1, 1),
    ],
)
def test_limits_stop_hostile_evaluation_with_a_located_error(
    tmp_path: Path, text: str, limit: str, line: int, col: int
) -> None:
    start = time.monotonic()
    err = _fail(tmp_path, text)
    assert time.monotonic() - start < 30
    assert isinstance(err, EvalLimitExceeded), err.render()
    assert err.hint is not None and f"REPROBUILD_{limit}=" in err.hint
    if limit == "MAX_STEPS":  # where the step budget runs out depends on the step
        assert err.span is not None and err.span.line == line
    elif line == 0:  # found printing the result: no place in the recipe
        assert err.span is None
    else:
        _located(err, line, col)


NESTED = {
    "parens": lambda n: "(" * n + "1" + ")" * n,
    "brackets": lambda n: "[" * n + "]" * n,
    "attrpath": lambda n: "{ " + "a." * n + "b = 1; }",
    "lambdas": lambda n: "x: " * n + "1",
    "negation": lambda n: "-" * n + "1",
    "sum": lambda n: "1" + "+1" * n,
    "interp": lambda n: '"${' * n + '"x"' + '}"' * n,
    "if": lambda n: "if true then " * n + "1" + " else 2" * n,
    "let": lambda n: "let a = " * n + "1" + "; in a" * n,
}


@pytest.mark.usefixtures("small_limits")
@pytest.mark.parametrize(
    ("shape", "n"),
    [
        *[(shape, 3_000) for shape in NESTED],
        ("parens", 100_000),
        ("brackets", 100_000),
        ("interp", 100_000),
        *[pytest.param(shape, 100_000, marks=pytest.mark.slow) for shape in NESTED],
    ],
)
def test_deeply_nested_syntax_is_a_parse_error(tmp_path: Path, shape: str, n: int) -> None:
    text = NESTED[shape](n)
    start = time.monotonic()
    err = _fail(tmp_path, text)
    assert time.monotonic() - start < 30
    assert isinstance(err, ParseError), err.render()
    assert "nested more than 200 levels deep" in err.message
    assert err.hint is not None and "REPROBUILD_MAX_NESTING=200" in err.hint
    assert err.span is not None and err.span.line == 1 and err.span.column > 1


def test_nesting_within_the_limit_evaluates_and_formats(tmp_path: Path) -> None:
    for text in (
        "(" * 390 + "1" + ")" * 390,
        "[" * 390 + "]" * 390,
        "{ " + "a." * 390 + "b = 1; }",
        '"${' * 120 + '"x"' + '}"' * 120,
    ):
        f = tmp_path / "ok.repro"
        f.write_text(text)
        api.evaluate(f, strict=True).to_json()
        once = format_source(parse(text, "ok"))
        assert format_source(parse(once, "ok")) == once


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('builtins.fromJSON "' + "[" * 5000 + '"', "JSON nested more than"),
        ('builtins.fromJSON "123456789012345678901234567890"', "does not fit in 64 bits"),
        ('builtins.fromJSON "' + "9" * 5000 + '"', "does not fit in 64 bits"),
        ('builtins.fromJSON "NaN"', "NaN is not a JSON number"),
        ('builtins.fromJSON "\\"\\\\ud800\\""', "lone UTF-16 surrogate"),
        ("1" * 5000, "is too large"),
    ],
)
def test_hostile_literals_and_json_are_project_errors(
    tmp_path: Path, text: str, message: str
) -> None:
    err = _fail(tmp_path, text)
    assert message in _located(err, 1, 1)


def test_pathological_lexing_and_formatting_take_linear_time(tmp_path: Path) -> None:
    # These were quadratic (path regex rescanned a+b+c..., comment column
    # search, first-token walk) or exponential (formatting "${"${...}"}").
    cases = [
        "1" + "+1" * 150 + "-1" * 150,
        "[" + "/**/ 1 " * 30_000 + "]",
        "[" + " a-b+c.d" * 30_000 + "]",
        "[ " + "x: x " * 0 + "1 " * 50_000 + "]",
        '"${' * 60 + '"x"' + '}"' * 60,
    ]
    for text in cases:
        start = time.monotonic()
        try:
            parsed = parse(text, "t")
            format_source(parsed)
        except ReprobuildError:
            pass
        assert time.monotonic() - start < 20, text[:40]


def test_limits_come_from_the_environment_and_are_checked() -> None:
    assert EvalLimits.from_env({}) == EvalLimits()
    got = EvalLimits.from_env({"REPROBUILD_MAX_DEPTH": "500", "REPROBUILD_MAX_STEPS": "1_000"})
    assert (got.max_depth, got.max_steps) == (500, 1000)
    for bad in ("0", "-3", "lots", "999999999999"):
        with pytest.raises(UsageError, match="REPROBUILD_MAX_DEPTH"):
            EvalLimits.from_env({"REPROBUILD_MAX_DEPTH": bad})


def test_defaults_leave_ordinary_deep_recursion_alone(tmp_path: Path) -> None:
    f = tmp_path / "ok.repro"
    f.write_text(
        "let sum = n: if n == 0 then 0 else n + sum (n - 1);\n"
        "    l = builtins.foldl' (acc: x: acc ++ [ x ]) [ ] (map (x: x) [ 1 2 3 ]);\n"
        "in { s = sum 5000; inherit l; j = builtins.fromJSON (builtins.toJSON l); }\n"
    )
    assert api.evaluate(f, strict=True).to_json() == {
        "s": 12502500,
        "l": [1, 2, 3],
        "j": [1, 2, 3],
    }


# -- through the CLI: exit 2, a caret, a hint, no traceback -------------------------


def test_cli_reports_limits_and_escapes_cleanly(tmp_path: Path) -> None:
    (tmp_path / "deep.repro").write_text(
        "let f = n: if n == 0 then 0 else 1 + f (n - 1); in f 1000000\n"
    )
    (tmp_path / "nest.repro").write_text("[" * 50_000 + "]" * 50_000 + "\n")
    (tmp_path / "data.repro").write_text(
        "let f = n: if n == 0 then [ ] else [ (f (n - 1)) ]; in f 2000\n"
    )
    (tmp_path / "pw").symlink_to("/etc/passwd")
    (tmp_path / "esc.repro").write_text("{ motd = file { path = ./pw; }; }\n")
    env = {"REPROBUILD_MAX_DEPTH": "3000"}
    for name, expect, hint in [
        ("deep.repro", "deep.repro:1:41: error: evaluation nested more than 3000 levels",
         "REPROBUILD_MAX_DEPTH=3000"),
        ("nest.repro", "nest.repro:1:401: error: expression nested more than 400 levels",
         "REPROBUILD_MAX_NESTING=400"),
        ("data.repro", "error: a value nested more than 400 levels deep cannot be output",
         "REPROBUILD_MAX_NESTING=400"),
        ("esc.repro", "esc.repro:1:24: error: path './pw' leaves the directory tree",
         "below the recipe's own directory"),
    ]:  # fmt: skip
        res = reprobuild(tmp_path, "eval", name, env=env, timeout=120)
        assert res.returncode == 2, res.stderr
        assert res.stderr.startswith(expect), res.stderr
        caret = name != "data.repro"  # the result being printed has no place
        assert ("^\n" in res.stderr) == caret and "\nhint: " in res.stderr and hint in res.stderr
        assert "Traceback" not in res.stderr
    res = reprobuild(tmp_path, "graph", "esc.repro", env=env, timeout=120)
    assert res.returncode == 2 and "leaves the directory tree" in res.stderr
    res = reprobuild(tmp_path, "eval", "deep.repro", env={"REPROBUILD_MAX_DEPTH": "x"})
    assert res.returncode == 2 and "REPROBUILD_MAX_DEPTH='x'" in res.stderr
    assert os.path.exists("/etc/passwd")  # (the escape target exists: refused, not missing)


def test_an_error_on_a_very_long_line_shows_a_window_around_the_caret(tmp_path: Path) -> None:
    """A generated one-line recipe must not print megabytes under an error."""
    from reprobuild.errors import SOURCE_WIDTH

    (tmp_path / "r.repro").write_text("[ " + "1 " * 5000 + "(1 + true) " + "2 " * 5000 + "]\n")
    r = reprobuild(tmp_path, "eval", "r.repro")
    assert r.returncode == 2, r.stderr
    source, caret = r.stderr.splitlines()[1:3]
    assert len(source) <= SOURCE_WIDTH + 4 and source.lstrip().startswith("…")
    assert source.rstrip().endswith("…")
    assert caret.rstrip().endswith("^")
    assert source[len(caret.rstrip()) - 1] in "(+1t"  # the caret lands on the failing expression
