"""Property tests: no input, however broken, raises anything but our own errors."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprobuild import api
from reprobuild.errors import ReprobuildError
from reprobuild.lang.fmt import format_source
from reprobuild.lang.parse import parse

HERE = Path(__file__).parent
CORPUS = [p.read_text() for p in sorted(HERE.glob("eval-*.repro"))]
TOKENS = [
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ";",
    ":",
    ",",
    ".",
    "...",
    "@",
    "=",
    "?",
    "${",
    "''",
    '"',
    "let",
    "in",
    "rec",
    "with",
    "if",
    "then",
    "else",
    "assert",
    "inherit",
    "or",
    "x",
    "y",
    "1",
    "2.5",
    "./p",
    "+",
    "-",
    "*",
    " / ",
    "//",
    "++",
    "==",
    "!=",
    "<",
    ">",
    "&&",
    "||",
    "->",
    "!",
    "#c\n",
    "/* c */",
    " ",
    "\n",
    "\\",
    "$",
    "'",
]


def _evaluate(tmp: Path, text: str) -> None:
    f = tmp / "fuzz.repro"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(ReprobuildError):
        api.evaluate(f, strict=True).to_json()


def _roundtrip(text: str) -> None:
    try:
        parsed = parse(text, "fuzz")
    except ReprobuildError:
        return
    once = format_source(parsed)
    assert format_source(parse(once, "fuzz")) == once


SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.binary(max_size=200))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    f = tmp_path / "fuzz.repro"
    f.write_bytes(data)
    with contextlib.suppress(ReprobuildError):
        api.evaluate(f, strict=True).to_json()


@SETTINGS
@given(toks=st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_token_soup(tmp_path: Path, toks: list[str]) -> None:
    text = " ".join(toks)
    _evaluate(tmp_path, text)
    _roundtrip(text)


@SETTINGS
@given(
    idx=st.integers(min_value=0, max_value=len(CORPUS) - 1),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "replace", "swap"]),
            st.integers(min_value=0, max_value=10_000),
            st.sampled_from(TOKENS),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_golden_recipes(
    tmp_path: Path, idx: int, edits: list[tuple[str, int, str]]
) -> None:
    text = CORPUS[idx]
    for op, pos, tok in edits:
        pos = pos % (len(text) + 1)
        if op == "delete":
            text = text[:pos] + text[pos + 1 :]
        elif op == "insert":
            text = text[:pos] + tok + text[pos:]
        elif op == "replace":
            text = text[:pos] + tok + text[pos + len(tok) :]
        else:
            text = text[pos:] + text[:pos]
    _evaluate(tmp_path, text)
    _roundtrip(text)


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    _evaluate(tmp_path, "(" * 5000 + "1" + ")" * 5000)
    _evaluate(tmp_path, "[" * 5000 + "]" * 5000)
    _evaluate(tmp_path, "let f = x: f (x + 1); in f 0")
