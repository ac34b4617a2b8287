"""One fuzz input through the recipe language: parse, evaluate, format.

Shared by the hypothesis tests and the atheris harness. The only exceptions
allowed out are :class:`ReprobuildError`; anything else is a bug. Limits are
low so that no generated input can take long or use much memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from reprobuild.errors import ReprobuildError
from reprobuild.lang.builtins import to_json
from reprobuild.lang.evaluate import Evaluator
from reprobuild.lang.fmt import format_source
from reprobuild.lang.limits import EvalLimits
from reprobuild.lang.parse import parse

LOW = EvalLimits(
    max_depth=400, max_nesting=100, max_string=20_000, max_list=2_000, max_steps=20_000
)


def run_one(root: Path, text: str) -> None:
    """Evaluate ``text`` as ``root/fuzz.repro`` (strictly, to JSON) and
    check that formatting it parses back to the same formatted text."""
    f = root / "fuzz.repro"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    ev = Evaluator(root, limits=LOW, trace=lambda msg: None)
    try:
        value = ev.eval_file(f, "fuzz.repro")
        ev.force_deep(value)
        json.dumps(to_json(ev, value, None), ensure_ascii=False).encode("utf-8")
    except ReprobuildError:
        pass
    try:
        parsed = parse(text, "fuzz.repro", max_nesting=LOW.max_nesting)
    except ReprobuildError:
        return
    once = format_source(parsed)
    again = format_source(parse(once, "fuzz.repro", max_nesting=4 * LOW.max_nesting))
    assert again == once, (text, once, again)
