"""The ``reprobuild diff`` command, ready for ``cli.add_command`` (parsing and printing only).

Exit codes follow DESIGN.md section 1: 0 identical, 1 different, 2 an input
could not be read (raised as :class:`~reprobuild.diff.DiffError`, which the
CLI's ``main`` maps to 2 like every other :class:`ReprobuildError`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reprobuild.canonical import canonical_json
from reprobuild.diff import compare, render_html, render_json, render_text

__all__ = ["diff_cmd"]


@click.command("diff")
@click.argument("a", type=click.Path(path_type=Path, exists=True))
@click.argument("b", type=click.Path(path_type=Path, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the difference tree as JSON.")
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained HTML report to FILE.",
)
@click.option(
    "--diffoscope",
    "use_diffoscope",
    is_flag=True,
    help="Hand the deepest differing file pairs to diffoscope (when installed).",
)
def diff_cmd(a: Path, b: Path, as_json: bool, html_file: Path | None, use_diffoscope: bool) -> None:
    """Explain why A and B (images, archives, packages, directories) differ.

    Exit status: 0 identical, 1 different, 2 an input cannot be read.
    """
    result = compare(a, b, use_diffoscope=use_diffoscope)
    if html_file is not None:
        html_file.write_text(render_html(result), encoding="utf-8")
    if as_json:
        click.echo(canonical_json(render_json(result), document=True), nl=False)
    elif result is not None:
        click.echo(render_text(result), nl=False)
    sys.exit(0 if result is None else 1)
