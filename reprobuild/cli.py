"""Command line: parses arguments, calls :mod:`reprobuild.api`, prints.

Exit codes: 0 success, 1 a check failed (or outputs are not reproducible),
2 bad input or usage. Expected failures print ``FILE:LINE:COL: error: ...``
with the source line and a caret, never a traceback (``--debug`` shows one).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click

from reprobuild import __version__, api
from reprobuild.errors import EXIT_BAD_INPUT, ReprobuildError

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in reprobuild, not in the input


def _dump(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reprobuild")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for every error.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Bit-for-bit reproducible OS images from dated archive snapshots."""
    ctx.obj = {"debug": debug}


@cli.command("eval")
@click.option("--json", "as_json", is_flag=True, help="Print the value as JSON.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def eval_cmd(file: Path, as_json: bool) -> None:
    """Evaluate FILE and print its value (strictly: every attribute forced)."""
    result = api.evaluate(file, strict=True)
    data = result.to_json()
    click.echo(_dump(data) if as_json else api.show_value(data))


@cli.command("fmt")
@click.option("--check", is_flag=True, help="Only report files that are not formatted; exit 1.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def fmt_cmd(files: tuple[Path, ...], check: bool) -> None:
    """Format recipe FILES in place (canonical layout, comments kept)."""
    unformatted = []
    for f in files:
        changed = api.format_file(f, write=not check)
        if changed:
            unformatted.append(f)
            click.echo(f"{'would reformat' if check else 'reformatted'} {f}", err=check)
    if check and unformatted:
        sys.exit(1)


@cli.command("graph")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def graph_cmd(file: Path, fmt: str) -> None:
    """Print the step graph of the recipe FILE (inputs before their users)."""
    click.echo(api.graph(file, fmt))


def _mirror_options(f: Any) -> Any:
    f = click.option(
        "--insecure-allow-unsigned",
        is_flag=True,
        help="Do not check index signatures (recorded in the lockfile).",
    )(f)
    f = click.option(
        "--keyring",
        "keyrings",
        multiple=True,
        metavar="NAME=PATH",
        help="Use PATH as the keyring of archive NAME (also REPROBUILD_KEYRING_<NAME>).",
    )(f)
    f = click.option(
        "--mirror",
        "mirrors",
        multiple=True,
        metavar="NAME=URL",
        help="Read archive NAME from URL instead of its canonical place "
        "(also REPROBUILD_MIRROR_<NAME>); the lockfile keeps canonical URLs.",
    )(f)
    return f


@cli.command("lock")
@click.argument("recipe", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--update", is_flag=True, help="Re-resolve even if the lockfile is current.")
@click.option("--date", help="Move every snapshot to this date (implies --update).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@_mirror_options
def lock_cmd(
    recipe: Path,
    update: bool,
    date: str | None,
    as_json: bool,
    mirrors: tuple[str, ...],
    keyrings: tuple[str, ...],
    insecure_allow_unsigned: bool,
) -> None:
    """Resolve RECIPE against its dated snapshots into RECIPE.lock."""
    from reprobuild.locking import Sources

    sources = Sources.from_env(mirrors, keyrings, insecure_allow_unsigned)
    result = api.lock(recipe, sources=sources, update=update, date=date)
    snaps = ", ".join(f"{s.archive}@{s.timestamp}" for s in result.lockfile.snapshots)
    if as_json:
        click.echo(
            _dump(
                {
                    "lockfile": str(result.path),
                    "changed": result.changed,
                    "packages": result.packages,
                    "snapshots": {s.name: s.timestamp for s in result.lockfile.snapshots},
                }
            )
        )
        return
    verb = "wrote" if result.changed else "up to date:"
    click.echo(f"{verb} {result.path} ({result.packages} packages, snapshot {snaps})")
    if result.lockfile.insecure:
        click.echo("warning: signatures were NOT checked (--insecure-allow-unsigned)", err=True)


def main(argv: list[str] | None = None) -> NoReturn:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="reprobuild", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except ReprobuildError as exc:
        if debug:
            traceback.print_exc()
        click.echo(exc.render(), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so briefly, unless asked for details
        if debug:
            traceback.print_exc()
        else:
            click.echo(
                f"internal error: {type(exc).__name__}: {exc}\n"
                "this is a bug in reprobuild; rerun with --debug for the traceback",
                err=True,
            )
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)
