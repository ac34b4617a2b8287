"""`reprobuild --help` loads neither the language, the store nor the diff tools."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from click.testing import CliRunner
from reprobuild.cli import cli
r = CliRunner().invoke(cli, ["--help"])
assert r.exit_code == 0, r.output
assert "diff " in r.output and "Explain why A and B" in r.output, r.output
heavy = sorted(m for m in ("lark", "dulwich", "reprobuild.lang.evaluate", "reprobuild.diff.formats")
               if m in sys.modules)
print(",".join(heavy))
"""


def test_help_imports_nothing_heavy() -> None:
    r = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_commands_still_load_their_modules() -> None:
    from click.testing import CliRunner

    from reprobuild.cli import cli

    r = CliRunner().invoke(cli, ["diff", "--help"])
    assert r.exit_code == 0 and "Exit status" in r.output
    r = CliRunner().invoke(cli, ["eval", "--help"])
    assert r.exit_code == 0 and "Evaluate FILE" in r.output
