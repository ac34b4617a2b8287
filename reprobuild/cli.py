"""Command line: parses arguments, calls :mod:`reprobuild.api`, prints.

Exit codes: 0 success, 1 a check failed (or outputs are not reproducible),
2 bad input or usage. Expected failures print ``FILE:LINE:COL: error: ...``
with the source line and a caret, never a traceback (``--debug`` shows one).
"""

from __future__ import annotations

import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import click

from reprobuild import __version__
from reprobuild.cli_options import fetch_options, store_option
from reprobuild.errors import EXIT_BAD_INPUT, ReprobuildError
from reprobuild.settings import FetchSettings

if TYPE_CHECKING:
    from reprobuild import api
else:  # loaded on first use: `--help` and usage errors skip the language and the store
    import importlib.util

    _spec = importlib.util.find_spec("reprobuild.api")
    _spec.loader = importlib.util.LazyLoader(_spec.loader)
    api = sys.modules["reprobuild.api"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(api)

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in reprobuild, not in the input


def _dump(data: Any) -> str:
    from reprobuild.canonical import canonical_json
    from reprobuild.redact import redact

    return redact(canonical_json(data, document=True).removesuffix("\n"))


class _LazyGroup(click.Group):
    """Commands with heavy imports load only when used, so start-up stays fast."""

    lazy: ClassVar[dict[str, tuple[str, str]]] = {"diff": ("reprobuild.diff.command", "diff_cmd")}
    # Their first help line, so that `--help` lists them without importing them.
    lazy_help: ClassVar[dict[str, str]] = {
        "diff": "Explain why A and B (images, archives, packages, directories) differ."
    }

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        rows = []
        for name in names:
            cmd = (
                click.Command(name, help=self.lazy_help[name])
                if name in self.lazy_help
                else self.get_command(ctx, name)
            )
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module, attr = self.lazy[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


@cli.command("lock")
@click.argument("recipe", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--update", is_flag=True, help="Re-resolve even if the lockfile is current.")
@click.option("--date", help="Move every snapshot to this date (implies --update).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option(
    "--embed-recipe",
    is_flag=True,
    help="Store the recipe and its imports in the lockfile, so it alone replays.",
)
@fetch_options(store=False)
def lock_cmd(
    recipe: Path,
    update: bool,
    date: str | None,
    as_json: bool,
    embed_recipe: bool,
    settings: FetchSettings,
) -> None:
    """Resolve RECIPE against its dated snapshots into RECIPE.lock."""
    sources = settings.sources()
    result = api.lock(recipe, sources=sources, update=update, date=date, embed_recipe=embed_recipe)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    snaps = ", ".join(f"{s.archive}@{s.timestamp}" for s in result.lockfile.snapshots)
    if as_json:
        click.echo(
            _dump(
                {
                    "lockfile": str(result.path),
                    "changed": result.changed,
                    "packages": result.packages,
                    "snapshots": {s.name: s.timestamp for s in result.lockfile.snapshots},
                    "changes": result.changes.to_json()
                    if result.changed and result.changes
                    else None,
                    "warnings": list(result.warnings),
                }
            )
        )
        return
    verb = "wrote" if result.changed else "up to date:"
    size = _size(sum(p.size for p in result.lockfile.packages))
    click.echo(f"{verb} {result.path} ({result.packages} packages, {size}, snapshot {snaps})")
    if result.changed and result.changes is not None:
        if result.reasons:
            click.echo("  because: " + "; ".join(result.reasons))
        for line in result.changes.lines():
            click.echo("  " + line)
    if result.lockfile.insecure:
        click.echo("warning: signatures were NOT checked (--insecure-allow-unsigned)", err=True)


@cli.command("build")
@click.argument("recipe", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where outputs go (default out/<recipe-name>/).",
)
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Steps run at once (default: CPUs).")
@click.option(
    "--locked", is_flag=True, help="Refuse to create or change the lockfile (like cargo --locked)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the steps that would run and the packages that would be fetched "
    "(name, version, size); write nothing.",
)
@click.option(
    "--progress",
    "force_progress",
    is_flag=True,
    help="Progress lines on standard error even with --json.",
)
@click.option(
    "--attest", is_flag=True, help="Write an in-toto SLSA provenance statement beside each output."
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where steps run: local threads, or a Dask distributed cluster (needs --scheduler; "
    "workers must see the recipe, and the store unless --worker-remote, at the same paths).",
)
@click.option(
    "--scheduler",
    metavar="URL",
    help="The Dask scheduler: tls://HOST:8786 with Dask's TLS settings (mutual TLS), or "
    "tcp:// on a loopback address.",
)
@click.option(
    "--quorum",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --executor dask: run each step on N distinct workers and record it only "
    "if their outputs are identical (exit 1 naming the first difference otherwise).",
)
@click.option(
    "--insecure-allow-tcp",
    is_flag=True,
    help="Join a plain tcp:// scheduler off loopback (unauthenticated: whoever reaches it "
    "runs code on this machine).",
)
@click.option(
    "--worker-remote",
    metavar="REMOTE",
    help="With --executor dask: a git remote the workers pull inputs from and push outputs "
    "to, for workers that do not share the store's path.",
)
@click.option(
    "--cache",
    "cache",
    metavar="REMOTE",
    help="A git remote holding a store: step records found there (by step key) are used "
    "instead of running the steps.",
)
@click.option("--push-cache", is_flag=True, help="Send this build's step records to --cache.")
@click.option(
    "--record",
    is_flag=True,
    help="Replace the output digests the lockfile records with this build's (without it, "
    "a build making other bytes fails and leaves the record as it is).",
)
@click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    metavar="NAME:KEY",
    help="A public key whose signatures on cache records are accepted (repeatable; "
    "also REPROBUILD_TRUSTED_KEYS).",
)
@click.option(
    "--cache-secret-key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Sign the records --push-cache sends with this key (REPROBUILD_CACHE_SECRET_KEY).",
)
@click.option(
    "--allow-unsigned-cache",
    is_flag=True,
    help="Use cache records no trusted key signed, and push unsigned ones (unsafe).",
)
@fetch_options()
def build_cmd(
    recipe: Path,
    out_dir: Path | None,
    jobs: int | None,
    locked: bool,
    as_json: bool,
    quiet: bool,
    dry_run: bool,
    force_progress: bool,
    attest: bool,
    executor: str,
    scheduler: str | None,
    quorum: int,
    insecure_allow_tcp: bool,
    worker_remote: str | None,
    cache: str | None,
    push_cache: bool,
    record: bool,
    trusted_keys: tuple[str, ...],
    cache_secret_key: Path | None,
    allow_unsigned_cache: bool,
    settings: FetchSettings,
) -> None:
    """Fetch, verify, build and export every output of RECIPE.

    Creates or updates RECIPE.lock when it is missing or stale (and says so).
    Output digests it already records are never overwritten: a build making
    other bytes exits 1 naming both, unless --record is given.
    """
    policy = None
    if cache:
        from reprobuild.cache_sign import CachePolicy

        policy = CachePolicy.from_settings(trusted_keys, cache_secret_key, allow_unsigned_cache)
    from reprobuild.progress import make_progress

    sources = settings.sources()
    store_path = settings.store_path
    if dry_run:
        _print_dry_run(recipe, store_path, sources, locked, as_json)
        return
    if insecure_allow_tcp:
        click.echo(
            "warning: --insecure-allow-tcp: a plain tcp:// cluster authenticates nobody; "
            "whoever reaches it can run code on this machine",
            err=True,
        )
    with make_progress(quiet=quiet or (as_json and not force_progress)) as progress:
        result = api.build(
            recipe,
            out_dir=out_dir,
            jobs=jobs,
            store_path=store_path,
            sources=sources,
            locked=locked,
            progress=progress,
            attest=attest,
            executor=executor,
            scheduler=scheduler,
            cache=cache,
            push_cache=push_cache,
            worker_remote=worker_remote,
            record=record,
            cache_policy=policy,
            quorum=quorum,
            insecure_allow_tcp=insecure_allow_tcp,
        )
    extra: dict[str, Any] = {}
    if executor == "dask":
        extra["ran_on"] = dict(sorted(result.ran_on.items()))
        extra["quorum"] = result.quorum
        extra["agreed"] = {k: list(v) for k, v in sorted(result.agreed.items())}

    if result.cache is not None:
        extra["cache"] = {
            "fetched": len(result.cache.fetched),
            "refused": {key: why for key, why in result.cache.refused},
            "pushed": result.pushed,
        }
        from reprobuild.redact import redact

        for key, why in result.cache.refused:
            click.echo(f"warning: cache entry for step {key} refused: {redact(why)}", err=True)
    for secret in result.secrets:
        click.echo(
            f"warning: {secret}; every image would share it "
            "(remove it and generate it on first boot)",
            err=True,
        )
    if result.secrets:
        extra["secrets"] = list(result.secrets)
    if as_json:
        click.echo(
            _dump(
                {
                    **extra,
                    "outputs": {
                        o.name: {
                            "sha256": o.sha256,
                            "path": str(o.path),
                            "media_type": o.media_type,
                        }
                        for o in result.outputs
                    },
                    "steps": {"total": result.total, "cached": result.cached, "run": result.run},
                    "build": result.build_ref,
                    "lockfile": {
                        "path": str(result.lockfile),
                        "changed": bool(result.lock_notes),
                        "notes": list(result.lock_notes),
                    },
                }
            )
        )
        return
    for line in result.lock_notes:  # a lockfile change is announced even with -q
        click.echo(line, err=True)
    if not quiet:
        click.echo(f"{result.total} steps ({result.cached} cached, {result.run} run)", err=True)
        if result.cache is not None:
            click.echo(
                f"cache: {len(result.cache.fetched)} step(s) from {result.cache.remote}, "
                f"{result.pushed} pushed",
                err=True,
            )
    width = max((len(o.name) for o in result.outputs), default=0)
    for o in result.outputs:
        click.echo(f"{o.name:<{width}}  sha256:{o.sha256}  {o.path}")


def _print_dry_run(
    recipe: Path, store_path: Path | None, sources: Any, locked: bool, as_json: bool
) -> None:
    from reprobuild.dryrun import dry_run
    from reprobuild.fetch import Fetcher

    plan = dry_run(recipe, store_path=store_path, sources=sources, fetcher=Fetcher(), locked=locked)
    if as_json:
        click.echo(_dump(plan.to_json()))
        return
    for line in plan.lock_notes:
        click.echo(line)
    to_run = [s for s in plan.steps if not s.cached]
    click.echo(f"steps: {len(to_run)} would run, {len(plan.steps) - len(to_run)} cached")
    width = max((len(s.kind) for s in plan.steps), default=0)
    for s in plan.steps:
        click.echo(f"  {'cached' if s.cached else 'run   '}  {s.kind:<{width}}  {s.name}")
    fetched = [p for p in plan.packages if not p.stored]
    total = sum(p.size for p in plan.packages)
    click.echo(
        f"packages: {len(plan.packages)} ({_size(total)}), {len(fetched)} to fetch "
        f"({_size(plan.fetch_bytes)})"
    )
    nwidth = max((len(p.name) for p in plan.packages), default=0)
    vwidth = max((len(p.version) for p in plan.packages), default=0)
    for p in plan.packages:
        click.echo(
            f"  {p.name:<{nwidth}}  {p.version:<{vwidth}}  {p.architecture:<5}  "
            f"{_size(p.size):>9}{'  (stored)' if p.stored else ''}"
        )


@cli.command("replay")
@click.argument("target")
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where replayed outputs go (default out/<recipe-name>-replay/).",
)
@click.option("-j", "--jobs", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--recipe",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The recipe to replay (default: the one beside the lockfile).",
)
@click.option(
    "--embedded-recipe",
    is_flag=True,
    help="Replay the recipe the lockfile embeds instead of a recipe file.",
)
@fetch_options()
def replay_cmd(
    target: str,
    out_dir: Path | None,
    jobs: int | None,
    as_json: bool,
    recipe: Path | None,
    embedded_recipe: bool,
    settings: FetchSettings,
) -> None:
    """Rebuild TARGET (a lockfile, or a build ref such as NAME/3) and compare digests.

    Never re-resolves: every input is the one the lockfile pins. Exit 0 when
    every output is identical, 1 when one differs.
    """
    from reprobuild.progress import make_progress
    from reprobuild.replay import replay

    with make_progress(quiet=as_json) as progress:
        result = replay(
            target,
            store_path=settings.store_path,
            sources=settings.sources(),
            out_dir=out_dir,
            jobs=jobs,
            recipe=recipe,
            embedded_recipe=embedded_recipe,
            on_note=lambda text: click.echo(f"note: {text}", err=True),
            progress=progress,
        )
    if as_json:
        click.echo(_dump(result.to_json()))
    else:
        width = max((len(o.name) for o in result.outputs), default=0)
        for o in result.outputs:
            status = (
                "identical"
                if o.identical
                else (
                    "not recorded"
                    if o.expected is None
                    else f"DIFFERS (recorded sha256:{o.expected})"
                )
            )
            click.echo(f"{o.name:<{width}}  sha256:{o.actual}  {status}")
            if o.summary:
                click.echo("    " + o.summary.replace("\n", "\n    "))
        for m in result.step_mismatches:
            click.echo(f"step differs from the store's record: {m}")
        if not result.identical:
            click.echo(f"full report: {result.report}", err=True)
    if not result.identical:
        sys.exit(1)


@cli.command("check")
@click.argument("recipe", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--variations",
    default="all",
    show_default=True,
    help="Comma-separated: build_path, home, tz, locale, umask, jobs, environment, "
    "hostname, dir_order, time (or all).",
)
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option(
    "--sequential",
    is_flag=True,
    help="Build one after the other (default: the control and the varied build at once "
    "when there are at least 2 CPUs and the clock is varied).",
)
@fetch_options()
def check_cmd(
    recipe: Path,
    variations: str,
    as_json: bool,
    quiet: bool,
    sequential: bool,
    settings: FetchSettings,
) -> None:
    """Build RECIPE twice, the second time under reprotest's variations; compare.

    Exit 0 when every output is identical; 1 naming, for each differing output,
    the variation(s) responsible and what differs, or when a build left a
    per-machine secret (an SSH host key, ...) in an image.
    """
    from reprobuild.check import check, parse_variations

    def say(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    result = check(
        recipe,
        variations=parse_variations(variations),
        settings=settings,
        say=say,
        concurrent=None if not sequential else False,
    )
    if as_json:
        click.echo(_dump(result.to_json()))
    else:
        click.echo(f"variations: {', '.join(result.applied) or 'none'}")
        for v, why in result.unavailable:
            click.echo(f"not varied: {v} ({why})")
        width = max((len(o.name) for o in result.outputs), default=0)
        for o in result.outputs:
            if o.identical:
                click.echo(f"{o.name:<{width}}  sha256:{o.control}  reproducible")
                continue
            click.echo(
                f"{o.name:<{width}}  NOT reproducible: {o.control[:16]}.. vs {o.varied[:16]}.."
            )
            click.echo(f"    caused by: {', '.join(o.causes)}")
            if o.diff:
                click.echo("    " + o.diff.replace("\n", "\n    "))
        for secret in result.secrets:
            click.echo(f"generated secret: {secret}")
    if not result.passed:
        sys.exit(1)


@cli.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def doctor_cmd(as_json: bool) -> None:
    """List every external tool reprobuild drives: found or missing, its version,
    the features that need it. Exit 1 when the sandbox or a core tool is missing."""
    from reprobuild.doctor import diagnose

    report = diagnose()
    if as_json:
        click.echo(_dump(report.to_json()))
    else:
        width = max(len(t.tool.name) for t in report.tools)
        pwidth = max(len(t.tool.package) for t in report.tools)
        for t in report.tools:
            state = t.version or "?" if t.found else "MISSING"
            click.echo(
                f"{t.tool.name:<{width}}  {t.tool.package:<{pwidth}}  {state[:40]:<40}  "
                f"{', '.join(t.tool.features)}"
            )
        click.echo(
            "sandbox: works"
            if report.sandbox is None
            else f"sandbox: DOES NOT WORK ({report.sandbox})"
        )
        cmd = report.install_command()
        if cmd:
            click.echo(f"missing: {len(report.missing)} tool(s); as root: {cmd}")
        else:
            click.echo("every tool is installed")
    if not report.ok:
        sys.exit(1)


@cli.command("sbom")
@click.argument("target", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--format", "fmt", type=click.Choice(["spdx", "cyclonedx"]), default="spdx", show_default=True
)
@click.option(
    "-o",
    "--output",
    "dest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of standard output.",
)
@store_option
def sbom_cmd(target: Path, fmt: str, dest: Path | None, store_path: Path | None) -> None:
    """An SBOM (SPDX 2.3 or CycloneDX 1.5 JSON) of a lockfile or a built output."""
    from reprobuild import lockfile as lf
    from reprobuild import sbom

    if target.is_file() and target.name.endswith(".lock"):
        lock, name = lf.load(target), target.name.removesuffix(".lock").removesuffix(".repro")
    else:
        lock, name = sbom.lock_for_output(target, store_path)
    licenses = sbom.licenses_in_store(lock, store_path)
    text = sbom.dumps(sbom.sbom(lock, name, "spdx" if fmt == "spdx" else "cyclonedx", licenses))
    if dest is None:
        click.echo(text, nl=False)
    else:
        dest.write_text(text, encoding="utf-8")


@cli.command("verify-attestation")
@click.argument("attestation", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("output", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--lockfile",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Also check that the statement was made from this lockfile, and the lockfile "
    "against the archive's signed index (from the store, else the mirror).",
)
@fetch_options()
def verify_attestation_cmd(
    attestation: Path,
    output: Path,
    lockfile: Path | None,
    settings: FetchSettings,
) -> None:
    """Check that ATTESTATION's subject is OUTPUT (and its lockfile LOCKFILE)."""
    from reprobuild.attest import verify

    info = verify(attestation, output, lockfile)
    if lockfile is not None:
        api.verify_lockfile(lockfile, store_path=settings.store_path, sources=settings.sources())
    click.echo(f"ok: sha256:{info['subject']} from recipe {info['recipe']['name']}")


@cli.command("status")
@click.argument("lockfile", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--rebuilder", required=True, metavar="URL", help="A rebuilderd instance.")
@click.option("--json", "as_json", is_flag=True)
def status_cmd(lockfile: Path, rebuilder: str, as_json: bool) -> None:
    """Ask a rebuilderd instance whether each locked package is reproducible."""
    from reprobuild import lockfile as lf
    from reprobuild.status import status

    report = status(lf.load(lockfile), rebuilder)
    if as_json:
        click.echo(
            _dump(
                {
                    "summary": report.summary(),
                    "packages": [vars(p) for p in report.packages],
                }
            )
        )
        return
    click.echo(report.summary())
    for p in report.packages:
        if p.status != "GOOD":
            line = f"  {p.status:<7} {p.name} {p.version} ({p.architecture})"
            click.echo(line + (f"  diffoscope: {p.diffoscope}" if p.diffoscope else ""))


@cli.command("verify")
@click.argument("target")
@click.option("-j", "--jobs", type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--tls-verify/--no-tls-verify",
    default=True,
    help="Check the registry's TLS certificate (loopback registries never are).",
)
@fetch_options()
def verify_cmd(
    target: str,
    jobs: int | None,
    as_json: bool,
    tls_verify: bool,
    settings: FetchSettings,
) -> None:
    """Rebuild an image someone published and say whether it is bit for bit the same.

    TARGET: a rootfs tarball, an OCI layout directory, oci-archive:FILE,
    docker-archive:FILE or REGISTRY/NAME@sha256:... An image reprobuild built
    is rebuilt from the lockfile it carries; a Debian root made by
    debuerreotype from the snapshot it names; an Arch Linux root made by
    archlinux-docker from the archive of its day. Exit 0 identical, 1 differs
    (every differing path attributed), 2 bad input.
    """
    from reprobuild.verify import verify

    result = verify(
        target,
        sources=settings.sources(),
        store_path=settings.store_path,
        tls_verify=tls_verify,
        jobs=jobs,
    )
    click.echo(_dump(result.to_json()) if as_json else result.render())
    if not result.identical:
        sys.exit(1)


@cli.command("push")
@click.argument("output", type=click.Path(path_type=Path, exists=True))
@click.argument("reference")
@click.option(
    "--tls-verify/--no-tls-verify",
    default=True,
    help="Check the registry's TLS certificate (loopback registries never are).",
)
@click.option(
    "--require-reproduced",
    is_flag=True,
    help="Publish only if an --attestation from an independent replay names this exact digest.",
)
@click.option(
    "--attestation",
    "attestations",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A provenance statement (from replay or another organization).",
)
def push_cmd(
    output: Path,
    reference: str,
    tls_verify: bool,
    require_reproduced: bool,
    attestations: tuple[Path, ...],
) -> None:
    """Push an OCI layout (out/NAME/) or archive (out/NAME.tar) to REGISTRY/NAME:TAG.

    The manifest is not re-encoded, so the pushed digest is the built one.
    The layout's referrers (the lockfile and SBOM describing the image) are
    pushed too, so 'reprobuild verify REGISTRY/NAME@DIGEST' can rebuild it.
    """
    if require_reproduced:
        from reprobuild.attest import verify
        from reprobuild.errors import CheckFailed

        if not attestations:
            raise CheckFailed(
                f"--require-reproduced: no attestation given for {output}",
                hint="replay the lockfile elsewhere with 'reprobuild build --attest' and pass "
                "its statement with --attestation",
            )
        for a in attestations:
            verify(a, output)
    digest = api.push(output, reference, tls_verify=tls_verify)
    click.echo(f"{reference}@{digest}")


@cli.group("store")
def store_group() -> None:
    """Inspect and share the content store."""


def _open_store(store_path: Path | None, create: bool = False) -> Any:
    from reprobuild.store import Store

    return Store.open_store(store_path, create=create)


@store_group.command("ls")
@click.option("--json", "as_json", is_flag=True)
@store_option
def store_ls(store_path: Path | None, as_json: bool) -> None:
    """List builds and steps with their sizes."""
    with _open_store(store_path) as store:
        entries = store.ls()
    if as_json:
        click.echo(_dump([_plain(e) for e in entries]))
        return
    for e in entries:
        names = ", ".join(o.name for o in e.outputs)
        label = e.ref.rsplit("/", 1)[-1][:12] if e.kind == "step" else e.ref
        click.echo(f"{e.kind:<5}  {e.name:<12}  {label:<24}  {_size(e.size):>9}  {names}")


@store_group.command("log")
@click.argument("build", required=False)
@store_option
def store_log(store_path: Path | None, build: str | None) -> None:
    """The history of builds (of one recipe or build ref, or all)."""
    with _open_store(store_path) as store:
        infos = store.list_builds() if build is None else store.log(store.resolve_build(build))
    for info in infos:
        when = datetime.fromtimestamp(info.time, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        click.echo(f"{info.ref}  {when}  commit {info.commit[:12]}")
        for o in info.record.outputs:
            click.echo(f"    {o.name:<12} sha256:{o.sha256}  {_size(o.size)}")


@store_group.command("keygen")
@click.argument("name")
@click.argument("secret_file", type=click.Path(path_type=Path, dir_okay=False))
def store_keygen(name: str, secret_file: Path) -> None:
    """Make a signing key NAME for a step cache: the secret goes to SECRET_FILE
    (mode 0600), the public key NAME:KEY is printed, for --trusted-key."""
    from reprobuild.cache_sign import generate

    click.echo(generate(name, secret_file))


@store_group.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--deep",
    is_flag=True,
    help="Also re-make every re-compressed region (gzip/zstd layers kept decompressed) "
    "and check the whole content's sha256 (slower).",
)
@store_option
def store_verify(store_path: Path | None, as_json: bool, deep: bool) -> None:
    """Recompute every object's hash and check every ref; exit 1 on damage."""
    with _open_store(store_path) as store:
        report = store.verify(deep=deep)
    if as_json:
        click.echo(_dump({"ok": report.ok, "problems": [str(p) for p in report.problems]}))
    else:
        for problem in report.problems:
            click.echo(f"damaged: {problem}")
        click.echo("store is consistent" if report.ok else f"{len(report.problems)} problems")
    if not report.ok:
        sys.exit(1)


@store_group.command("gc")
@click.option(
    "--keep-builds",
    type=click.IntRange(min=0),
    help="Keep the newest N builds of each recipe (with --keep-days, also builds that young); "
    "remove the others, and the step records only they listed.",
)
@click.option(
    "--keep-days",
    type=click.IntRange(min=0),
    help="Keep step records used this recently (and, with --keep-builds, builds this young).",
)
@click.option(
    "--grace",
    "grace_seconds",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Seconds during which new content and just-used steps are kept whatever the "
    "policy (a running build may not have recorded them yet).",
)
@store_option
def store_gc(
    store_path: Path | None, keep_builds: int | None, keep_days: int | None, grace_seconds: float
) -> None:
    """Apply the retention policy, then delete what no ref reaches."""
    with _open_store(store_path) as store:
        report = store.gc(keep_days=keep_days, keep_builds=keep_builds, grace_seconds=grace_seconds)
    click.echo(
        f"removed {len(report.removed_refs)} refs, {report.removed_content} content objects, "
        f"{report.removed_chunks} chunks "
        f"and {report.removed_git_objects} git objects; freed {_size(report.freed_bytes)}"
        + (f"; kept {report.kept_young} young objects" if report.kept_young else "")
    )
    for note in report.notes:
        click.echo(f"note: {note}")


@store_group.command("rm")
@click.argument("refs", nargs=-1, required=True)
@store_option
def store_rm(store_path: Path | None, refs: tuple[str, ...]) -> None:
    """Remove builds (refs/builds/R/N, R/N); `store gc` then frees what only they used."""
    with _open_store(store_path) as store:
        for ref in refs:
            click.echo(f"removed {store.remove_build(ref)}")


@store_group.command("migrate")
@store_option
def store_migrate(store_path: Path | None) -> None:
    """Convert a store of an older format in place (also done by its first write)."""
    with _open_store(store_path) as store:
        report = store.migrate()
    click.echo(
        f"store format {report.from_format} -> {report.to_format}: {report.objects} objects "
        f"chunked, {_size(report.bytes_before)} -> {_size(report.bytes_after)}"
    )


@store_group.command("push")
@click.argument("remote")
@store_option
def store_push(store_path: Path | None, remote: str) -> None:
    """Send builds, steps and their content to a git remote (path or URL)."""
    with _open_store(store_path) as store:
        report = store.push(remote)
    _transfer(report, "pushed to")


@store_group.command("pull")
@click.argument("remote")
@click.argument("refs", nargs=-1)
@store_option
def store_pull(store_path: Path | None, remote: str, refs: tuple[str, ...]) -> None:
    """Fetch builds, steps and their content from a git remote (path or URL).

    With REFS (refs/builds/R/N, R/N, refs/steps/KEY), only those records, the
    steps a build lists, and their content are fetched.
    """
    with _open_store(store_path, create=True) as store:
        report = store.pull(remote, refs=refs or None)
    _transfer(report, "pulled from")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)  # pragma: no cover


def _plain(x: Any) -> Any:
    """Dataclasses as JSON-able data, for --json."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, tuple | list):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    return x


def _transfer(report: Any, verb: str) -> None:
    click.echo(
        f"{verb} {report.remote}: {len(report.updated)} refs updated, {report.unchanged} "
        f"unchanged, {report.content_objects} content objects ({_size(report.content_bytes)})"
    )
    for ref in report.conflicts:
        click.echo(f"conflict (left alone): {ref}", err=True)


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
        from reprobuild.redact import redact

        if debug:
            traceback.print_exc()
        click.echo(redact(exc.render()), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:  # the machine's state (a full disk, a read-only path), not a bug
        import tempfile

        from reprobuild.oserrors import project_error

        if debug:
            traceback.print_exc()
        from reprobuild.redact import redact

        error = project_error(exc, where=(tempfile.gettempdir(), Path.cwd()))
        click.echo(redact(error.render()), err=True)
        sys.exit(error.exit_code)
    except Exception as exc:  # a bug: say so briefly, unless asked for details
        if debug:
            traceback.print_exc()
        else:
            from reprobuild.redact import redact

            click.echo(
                f"internal error: {type(exc).__name__}: {redact(str(exc))}\n"
                "this is a bug in reprobuild; rerun with --debug for the traceback",
                err=True,
            )
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)
