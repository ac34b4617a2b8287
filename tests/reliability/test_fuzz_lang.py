"""Fuzzing the recipe language: only the project's own errors may come out.

Three generators, each through ``fuzz/lang_harness.run_one`` (parse,
evaluate strictly with low limits, format and re-parse):

* hypothesis, programs built from the grammar (every construct, nested);
* hypothesis, golden recipes mutated (splices, duplications, boundary values);
* atheris (libFuzzer, coverage-guided) on bytes, seeded with the golden corpus.

The default run is a reduced form (a few thousand inputs in all); the
``slow`` form runs at least 10,000 inputs of each (``make test-long``).
tests/lang/test_properties.py already covers random bytes and token soup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.fuzz.lang_harness import run_one

HERE = Path(__file__).parent
GOLDEN = sorted((HERE.parent / "lang").glob("eval-*.repro"))
CORPUS = [p.read_text() for p in GOLDEN]
REDUCED = 700
FULL = 10_000

# -- programs from the grammar ---------------------------------------------------

NAMES = ["x", "y", "f", "s", "a", "b", "or"]
BUILTINS = [
    "map", "toString", "import", "throw", "abort", "true", "false", "null",
    "builtins.head", "builtins.tail", "builtins.length", "builtins.attrNames",
    "builtins.attrValues", "builtins.concatStringsSep", "builtins.elem",
    "builtins.filter", "builtins.foldl'", "builtins.fromJSON", "builtins.toJSON",
    "builtins.getAttr", "builtins.hasAttr", "builtins.listToAttrs", "builtins.mapAttrs",
    "builtins.trace", "file", "run", "rootfs", "snapshot", "tarball", "fetchurl",
]  # fmt: skip
INTS = ["0", "1", "2", "-1", "9223372036854775807", "9223372036854775808", "4611686018427387904"]
ATOMS = st.one_of(
    st.sampled_from(INTS),
    st.sampled_from(["0.5", "1e308", ".5e-3", "1.0"]),
    st.sampled_from(NAMES + BUILTINS),
    st.sampled_from(["./.", "./a", "./a/b", "./..", "./lib.repro", "a/b"]),
    st.text(alphabet='ab$\\{}"\n\t\'/ \u00e9\u0000', max_size=8).map(
        lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"').replace("${", "$\\{") + '"'
    ),
    st.sampled_from(['"[1,2]"', '"{\\"a\\":[true,null,1.5]}"', '"\\\\ud800"', "''\n  x\n''"]),
    st.just("{ }"),
    st.just("[ ]"),
)
NAME = st.sampled_from(NAMES)
OPERATORS = ["+", "-", "*", "/", "++", "//", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "->"]
ATTR = st.one_of(NAME, st.just('"q k"'), st.just("${\"d\"}"))


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binding = st.tuples(st.lists(ATTR, min_size=1, max_size=3), inner).map(
        lambda t: ".".join(t[0]) + " = " + t[1] + ";"
    )
    binds = st.lists(
        st.one_of(binding, NAME.map(lambda n: f"inherit {n};")), min_size=1, max_size=4
    ).map(" ".join)
    return st.one_of(
        st.tuples(inner, st.sampled_from(OPERATORS), inner).map(" ".join),
        st.tuples(st.sampled_from(["!", "-"]), inner).map(lambda t: t[0] + "(" + t[1] + ")"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) ({t[1]})"),
        st.tuples(inner, ATTR).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(inner, ATTR, inner).map(lambda t: f"({t[0]}).{t[1]} or ({t[2]})"),
        st.tuples(inner, ATTR).map(lambda t: f"({t[0]}) ? {t[1]}"),
        st.lists(inner, max_size=4).map(lambda xs: "[ " + " ".join(f"({x})" for x in xs) + " ]"),
        st.tuples(st.booleans(), binds).map(lambda t: ("rec " if t[0] else "") + "{ " + t[1] + " }"),
        st.tuples(binds, inner).map(lambda t: f"let {t[0]} in {t[1]}"),
        st.tuples(NAME, inner).map(lambda t: f"{t[0]}: {t[1]}"),
        st.tuples(st.lists(NAME, max_size=3, unique=True), st.booleans(), inner).map(
            lambda t: "{ " + ", ".join([*t[0], *(["..."] if t[1] else [])]) + " }: " + t[2]
        ),
        st.tuples(inner, inner, inner).map(lambda t: f"if {t[0]} then {t[1]} else {t[2]}"),
        st.tuples(inner, inner).map(lambda t: f"with {t[0]}; {t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"assert {t[0]}; {t[1]}"),
        st.tuples(inner, inner).map(lambda t: f'"a${{{t[0]}}}b${{{t[1]}}}"'),
        inner.map(lambda x: f"''\n  line ${{{x}}}\n    ''$ '''\n''"),
        inner.map(lambda x: f"({x})"),
        inner.map(lambda x: f"builtins.fromJSON (builtins.toJSON ({x}))"),
    )


PROGRAMS = st.recursive(ATOMS, _combine, max_leaves=25)


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _lib(root: Path) -> None:
    (root / "lib.repro").write_text("{ a = 1; f = x: x; }")
    (root / "a").mkdir(exist_ok=True)


def _grammar(tmp_path: Path, n: int) -> None:
    _lib(tmp_path)

    @_settings(n)
    @given(text=PROGRAMS)
    def run(text: str) -> None:
        run_one(tmp_path, text)

    run()


def test_grammar_programs_reduced(tmp_path: Path) -> None:
    _grammar(tmp_path, REDUCED)


@pytest.mark.slow
def test_grammar_programs_full(tmp_path: Path) -> None:
    _grammar(tmp_path, FULL)


# -- golden recipes, mutated -----------------------------------------------------

BOUNDARY = ["9223372036854775807", "-9223372036854775808", "1e400", "0", '"\\u0000"', "./..",
            "(", "${", "''", "rec", "@", "...", "\n", "#", "/*", "?", "//", "-", "."]  # fmt: skip


MUTATED = st.tuples(
    st.integers(0, len(CORPUS) - 1),
    st.integers(0, len(CORPUS) - 1),
    st.lists(
        st.tuples(
            st.sampled_from(["splice", "dup", "boundary", "digit", "cut"]),
            st.integers(0, 100_000),
            st.integers(0, 100_000),
            st.sampled_from(BOUNDARY),
        ),
        min_size=1,
        max_size=5,
    ),
)


def _mutate(case: tuple[int, int, list[tuple[str, int, int, str]]]) -> str:
    i, j, edits = case
    text, other = CORPUS[i], CORPUS[j]
    for op, a, b, tok in edits:
        p = a % (len(text) + 1)
        q = b % (len(other) + 1)
        if op == "splice":  # the head of one recipe, the tail of another
            text = text[:p] + other[q:]
        elif op == "dup":  # a slice repeated: deeper nesting, more bindings
            k = min(len(text), p + 1 + b % 40)
            text = text[:k] + text[p:k] * (1 + b % 4) + text[k:]
        elif op == "boundary":
            text = text[:p] + tok + text[p:]
        elif op == "digit":  # a number grown past 64 bits
            text = text[:p] + "9" * (1 + b % 30) + text[p:]
        else:
            text = text[:p] + text[p + 1 + b % 10 :]
    return text


def _golden(tmp_path: Path, n: int) -> None:
    _lib(tmp_path)
    shutil.copytree(HERE.parent / "lang" / "lib", tmp_path / "lib", dirs_exist_ok=True)
    for p in (HERE.parent / "lang").glob("lib-*.repro"):
        shutil.copy(p, tmp_path / p.name)

    @_settings(n)
    @given(case=MUTATED)
    def run(case: tuple[int, int, list[tuple[str, int, int, str]]]) -> None:
        run_one(tmp_path, _mutate(case))

    run()


def test_mutated_golden_recipes_reduced(tmp_path: Path) -> None:
    _golden(tmp_path, REDUCED)


@pytest.mark.slow
def test_mutated_golden_recipes_full(tmp_path: Path) -> None:
    _golden(tmp_path, FULL)


# -- atheris -----------------------------------------------------------------------


def _address_space_limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def _atheris(tmp_path: Path, runs: int) -> None:
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in GOLDEN:
        shutil.copy(p, corpus / p.name)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent.parent)}
    res = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz" / "atheris_lang.py"),
            f"-runs={runs}",
            "-seed=1",
            # libFuzzer's RSS check reads the peak RSS (getrusage), which Linux
            # carries across exec from the forking pytest process (about 2 GB
            # late in a full run): it fired before any input ran. Bound each
            # allocation instead, and the whole process with RLIMIT_AS below.
            "-rss_limit_mb=0",
            "-malloc_limit_mb=2048",
            "-timeout=20",  # seconds per input
            "-max_len=4096",
            str(corpus),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        preexec_fn=_address_space_limit,
    )
    tail = "\n".join(res.stderr.splitlines()[-40:])
    assert res.returncode == 0, tail
    assert f"Done {runs} runs" in res.stderr, tail


def test_atheris_reduced(tmp_path: Path) -> None:
    _atheris(tmp_path, 1_500)


@pytest.mark.slow
def test_atheris_full(tmp_path: Path) -> None:
    _atheris(tmp_path, 20_000)
