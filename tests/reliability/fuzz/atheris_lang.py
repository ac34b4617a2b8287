"""Coverage-guided fuzzing of the recipe language with atheris (libFuzzer).

    python tests/reliability/fuzz/atheris_lang.py -runs=10000 -seed=1 CORPUS_DIR

Each input is UTF-8-decoded (invalid bytes replaced), then parsed, evaluated
strictly with low limits and formatted (see ``lang_harness``); any exception
but a ReprobuildError is a crash libFuzzer reports (and exits non-zero).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

with atheris.instrument_imports(include=["reprobuild"]):
    from tests.reliability.fuzz.lang_harness import run_one

WORK = Path(tempfile.mkdtemp(prefix="reprobuild-fuzz-"))


def test_one_input(data: bytes) -> None:
    run_one(WORK, data.decode("utf-8", errors="replace"))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
