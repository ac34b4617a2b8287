"""The library surface: every CLI verb is a call here, usable without the CLI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reprobuild.errors import RecipeError, ReprobuildError
from reprobuild.outputs import BuiltOutput, agreements, export_outputs, step_secrets
from reprobuild.recipe import (
    Evaluation,
    deep_stack,
    evaluate,
    format_file,
    graph,
    make_plan,
    show_value,
)

if TYPE_CHECKING:
    from reprobuild.cache import CacheReport
    from reprobuild.cache_sign import CachePolicy
    from reprobuild.execute import Progress, StepExecutor
    from reprobuild.fetch import Fetcher
    from reprobuild.lockdiff import LockChanges
    from reprobuild.lockfile import Lockfile, Staleness
    from reprobuild.locking import Sources
    from reprobuild.plan import Plan, Step
    from reprobuild.store import StepRecord

@dataclass(frozen=True)
class LockResult:
    path: Path
    lockfile: Lockfile
    changed: bool
    packages: int
    warnings: tuple[str, ...] = ()  # what the resolvers warned about (as pacman does)
    changes: LockChanges | None = None  # what changed, when it did
    reasons: tuple[str, ...] = ()  # why it was re-resolved (staleness)

    def announcement(self) -> list[str]:
        """The lines that say a lockfile was written and what changed in it."""
        if not self.changed or self.changes is None:
            return []
        if self.changes.created:
            head = f"created {self.path}"
        else:
            head = f"updated {self.path}"
            if self.reasons:
                head += " (" + "; ".join(self.reasons) + ")"
        return [head] + ["  " + line for line in self.changes.lines()]


@dataclass(frozen=True)
class PlannedRecipe:
    """A recipe evaluated and planned, with the hashes a lockfile is checked against."""

    path: Path
    evaluation: Evaluation
    plan: Plan
    sha256: str
    sources: dict[str, str]

    def staleness(self, lock: Lockfile) -> Staleness:
        from reprobuild import lockfile as lf
        from reprobuild.locking import rootfs_requests, snapshot_names

        return lf.staleness(
            lock,
            self.sha256,
            self.sources,
            snapshot_names(self.plan),
            {rkey: name for name, _, _, rkey in rootfs_requests(self.plan)},
        )


def planned(path: Path) -> PlannedRecipe:
    from reprobuild.plan import plan

    result = evaluate(path)
    with deep_stack():
        p = plan(result.evaluator, result.value, str(path))
    top, files = recipe_sources(result)
    return PlannedRecipe(path, result, p, top, files)


_ARCHIVED = ("rootfs", "snapshot")


def require_tools(p: Plan, *, command: str, locking: bool, signed: bool = True) -> None:
    """Stop before any work when a program the plan's steps call is missing;
    the snapshot verifiers count only when the command will lock and check
    signatures."""
    from reprobuild import doctor
    from reprobuild.archives import PackageFormat, for_archive, load_archive
    from reprobuild.errors import ReprobuildError

    def archive_format(step: Step) -> PackageFormat | None:
        params = step.param_data()
        if step.kind == "rootfs":
            snap = params.get("snapshot")
            first = snap[0] if isinstance(snap, list) and snap else snap
            if not isinstance(first, dict) or first.get("step") not in p.steps:
                return None
            params = p.steps[first["step"]].param_data()
        try:
            return for_archive(load_archive(str(params.get("archive"))))
        except ReprobuildError:  # reported where the snapshot is locked, with its place
            return None

    steps = [
        (
            s.kind,
            s.name,
            s.param_data(),
            archive_format(s) if s.kind in ("rootfs", "snapshot") else None,
        )
        for s in p.order()
        if s.kind != "snapshot" or (locking and signed)
    ]
    doctor.require(doctor.plan_needs(steps), command=command)


def locked_for_build(
    pr: PlannedRecipe,
    *,
    locked: bool,
    sources: Sources,
    fetcher: Fetcher,
    write: bool = True,
    command: str = "build",
) -> tuple[Lockfile, list[str]]:
    """The lockfile a build uses (locking first when it is missing or stale),
    and the lines announcing any change; checks the tools before any work."""
    from reprobuild import lockfile as lf
    from reprobuild.errors import LockfileError

    path = pr.path
    lock_file = lf.lock_path(path)
    current = lf.load(lock_file) if lock_file.exists() else None
    state = pr.staleness(current) if current is not None else None
    if locked and current is None:
        raise LockfileError(
            f"{lock_file} does not exist and --locked forbids creating it",
            hint=f"run 'reprobuild lock {path}' to create it (or build without --locked); "
            f"a lockfile shared with you goes beside the recipe as {lock_file.name}",
        )
    if locked and state is not None and state.stale:
        raise LockfileError(
            f"{lock_file} is stale: " + "; ".join(state.reasons),
            hint="run 'reprobuild lock' to update it, or build without --locked",
        )
    # The signed indexes are verified whether the lockfile is made now or read
    # (index_trust), so the verifier is needed either way.
    require_tools(pr.plan, command=command, locking=True, signed=not sources.insecure)
    if current is not None and (state is None or not state.stale):
        return current, []
    result = lock(path, sources=sources, fetcher=fetcher, write=write)
    return result.lockfile, result.announcement()


def build_epoch(lock: Lockfile) -> int:
    """SOURCE_DATE_EPOCH when set, else the newest snapshot's time."""
    from reprobuild.buildgraph import snapshot_epoch

    value = os.environ.get("SOURCE_DATE_EPOCH")
    return int(value) if value and value.isdigit() else snapshot_epoch(lock)


def recipe_sources(result: Evaluation) -> tuple[str, dict[str, str]]:
    """sha256 of the top-level recipe and of every recipe file evaluation read."""
    from reprobuild.fetch import sha256_file

    root = result.evaluator.root_dir
    top = sha256_file(result.path)[0]
    files = {
        os.path.relpath(p, root): sha256_file(p)[0] for p in result.evaluator.files_read.values()
    }
    return top, files


def lock(
    path: Path,
    *,
    sources: Sources | None = None,
    update: bool = False,
    date: str | None = None,
    fetcher: Fetcher | None = None,
    embed_recipe: bool = False,
    write: bool = True,
) -> LockResult:
    """Resolve a recipe's snapshots and rootfs steps and write ``RECIPE.lock``.

    An existing lockfile that still matches the recipe is kept as is unless
    ``update`` asks to re-resolve (``date`` moves every snapshot). With
    ``write`` False nothing is written (``build --dry-run``).
    """
    from reprobuild import lockfile as lf
    from reprobuild.fetch import Fetcher
    from reprobuild.locking import Sources, build_lock

    pr = planned(path)
    result, p, top, files = pr.evaluation, pr.plan, pr.sha256, pr.sources
    out = lf.lock_path(path)
    current = _load_previous(out, tolerant=update or date is not None)
    reasons: tuple[str, ...] = ()
    if current is not None and not update and date is None:
        state = pr.staleness(current)
        if not state.stale and bool(current.embedded) == embed_recipe:
            return LockResult(out, current, False, len(current.packages))
        reasons = state.reasons
    elif update or date is not None:
        reasons = (f"--date {date}",) if date is not None else ("--update",)
    sources = sources or Sources.from_env()
    require_tools(p, command="lock", locking=True, signed=not sources.insecure)
    warnings: list[str] = []
    try:
        new = build_lock(
            p,
            recipe_sha256=top,
            sources_map=files,
            fetcher=fetcher or Fetcher(),
            sources=sources,
            date=date,
            warn=warnings.append,
        )
    except ReprobuildError as exc:
        locate_error(exc, pr)
        raise
    if embed_recipe:
        from dataclasses import replace

        root = result.evaluator.root_dir
        texts = {
            os.path.relpath(p_, root): p_.read_text(encoding="utf-8")
            for p_ in result.evaluator.files_read.values()
        }
        new = replace(new, embedded=texts)
    from reprobuild.lockdiff import changes

    changed = not out.exists() or out.read_text(encoding="utf-8") != new.dumps()
    if changed and write:
        from reprobuild.store._fs import no_space_named

        with no_space_named(out, "lockfile"):
            lf.write(out, new)
    return LockResult(
        out,
        new,
        changed,
        len(new.packages),
        tuple(warnings),
        changes=changes(current, new),
        reasons=reasons,
    )


def locate_error(exc: ReprobuildError, pr: PlannedRecipe) -> None:
    """Point an error found after evaluation at the recipe text it comes from
    (``exc.where``: step key, argument, and the quoted text to find, if any)."""
    from reprobuild.errors import SourceSpan

    if exc.where is None or exc.span is not None:
        return
    key, arg, needle = exc.where
    step = pr.plan.steps.get(key)
    if step is None:
        return
    span = step.spans.get(arg) or step.spans.get("")
    if span is None:
        return
    lines = pr.evaluation.evaluator.source_lines.get(span.file, [])
    line_no, col = span.line, span.column
    if needle is not None:  # the quoted name itself, at or after the argument
        quoted = f'"{needle}"'
        for i in range(span.line - 1, min(len(lines), span.line + 200)):
            start = lines[i].find(quoted, col - 1 if i == span.line - 1 else 0)
            if start >= 0:
                line_no, col = i + 1, start + 1
                break
    source = lines[line_no - 1] if 0 < line_no <= len(lines) else None
    exc.locate(SourceSpan(span.file, line_no, col), source)


def _load_previous(path: Path, *, tolerant: bool) -> Lockfile | None:
    """The lockfile beside a recipe, if there is one. With ``tolerant`` (``lock
    --update``), one this version cannot read counts as none, so it can be replaced."""
    from reprobuild import lockfile as lf
    from reprobuild.errors import LockfileError

    if not path.exists():
        return None
    try:
        return lf.load(path)
    except LockfileError:
        if tolerant:
            return None
        raise


@dataclass(frozen=True)
class BuildResult:
    recipe: str
    outputs: tuple[BuiltOutput, ...]
    total: int
    cached: int
    run: int
    build_ref: str
    lockfile: Path
    ran_on: Mapping[str, str] = field(default_factory=dict)  # step key -> Dask worker
    # step key -> the workers whose runs agreed (one without --quorum)
    agreed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    quorum: int = 1
    cache: CacheReport | None = None  # what --cache brought in
    pushed: int = 0  # step records --push-cache added to the cache
    lock_notes: tuple[str, ...] = ()  # what was written to the lockfile, for people
    # per-machine secrets left in a tree: "rootfs 'NAME': /PATH: why" (see steps/firstboot.py)
    secrets: tuple[str, ...] = ()


def _check_build_options(
    executor: str, scheduler: str | None, cache: str | None, push_cache: bool
) -> None:
    from reprobuild.errors import UsageError

    if executor not in ("local", "dask"):
        raise UsageError(f"unknown executor {executor!r}", hint="use 'local' or 'dask'")
    if executor == "dask" and not scheduler:
        raise UsageError("--executor dask needs --scheduler tls://HOST:PORT")
    if scheduler and executor != "dask":
        raise UsageError("--scheduler is only used with --executor dask")
    if push_cache and not cache:
        raise UsageError("--push-cache needs --cache REMOTE")


def build(
    path: Path,
    *,
    out_dir: Path | None = None,
    jobs: int | None = None,
    store_path: Path | None = None,
    sources: Sources | None = None,
    locked: bool = False,
    fetcher: Fetcher | None = None,
    progress: Progress | None = None,
    attest: bool = False,
    executor: str = "local",
    scheduler: str | None = None,
    cache: str | None = None,
    push_cache: bool = False,
    worker_remote: str | None = None,
    cache_policy: CachePolicy | None = None,
    record: bool = False,
    quorum: int = 1,
    insecure_allow_tcp: bool = False,
    epoch: int | None = None,
) -> BuildResult:
    """Lock (unless current), fetch, run and export every output of a recipe.

    Output digests the lockfile already records are evidence: a build that
    makes other bytes fails (exit 1, naming both digests) and leaves them as
    they are, unless ``record`` asks to replace them. Digests not yet
    recorded are added. Every change to the lockfile is announced in
    ``BuildResult.lock_notes``.

    With ``attest``, an in-toto provenance statement is written beside each
    output as ``NAME.intoto.json``. ``executor="dask"`` runs steps on the
    Dask cluster at ``scheduler`` (see distributed.py). ``cache`` names a git
    remote holding a store whose step records are used instead of running
    those steps; ``push_cache`` sends this build's step records there.
    ``worker_remote``: Dask workers exchange inputs and outputs through this
    git remote instead of opening the store at its path. ``cache_policy``
    says which signatures make a cache record acceptable and signs what is
    pushed (default: from the environment, see cache_sign.py). ``quorum``: each
    step that runs on the cluster runs on that many distinct workers and is
    recorded only if their outputs are identical (claims.py).
    ``insecure_allow_tcp``: join an unauthenticated tcp:// scheduler off
    loopback (see cluster_auth.py). ``epoch`` overrides SOURCE_DATE_EPOCH and
    the snapshot's time (verify rebuilds at the epoch an image shows).
    """
    from reprobuild import lockfile as lf
    from reprobuild.buildgraph import expand
    from reprobuild.execute import execute
    from reprobuild.fetch import Fetcher
    from reprobuild.locking import Sources
    from reprobuild.store import BuildRecord, ContentCorrupt, Output, Store
    from reprobuild.store._fs import no_space_named

    _check_build_options(executor, scheduler, cache, push_cache)
    if cache:
        from reprobuild.cache_sign import CachePolicy

        cache_policy = cache_policy or CachePolicy.from_settings()
        if push_cache and cache_policy.secret is None and not cache_policy.allow_unsigned:
            from reprobuild.errors import UsageError

            raise UsageError(
                "--push-cache signs the records it sends: give a key with --cache-secret-key "
                "FILE (or REPROBUILD_CACHE_SECRET_KEY)",
                hint="make one with 'reprobuild store keygen NAME FILE'; "
                "--allow-unsigned-cache pushes unsigned records",
            )
    if (worker_remote or quorum != 1 or insecure_allow_tcp) and executor != "dask":
        from reprobuild.errors import UsageError

        option = (
            "--worker-remote"
            if worker_remote
            else "--quorum"
            if quorum != 1
            else "--insecure-allow-tcp"
        )
        raise UsageError(f"{option} is only used with --executor dask")
    sources = sources or Sources.from_env()
    fetcher = fetcher or Fetcher()
    pr = planned(path)
    result, p = pr.evaluation, pr.plan
    lock_file = lf.lock_path(path)
    lock, notes = locked_for_build(pr, locked=locked, sources=sources, fetcher=fetcher)

    epoch = build_epoch(lock) if epoch is None else epoch
    graph = expand(p, lock, epoch)
    recipe_name = path.name.removesuffix(".repro")
    out_dir = out_dir or Path("out") / recipe_name
    if progress is None:
        from reprobuild.execute import Progress

        progress = Progress()
    if fetcher.on_bytes is None:  # bytes fetched and their rate, for the display
        fetcher.on_bytes = progress.on_bytes or progress.add_bytes
    step_executor = None
    if executor == "dask":
        from reprobuild.distributed import DaskExecutor

        assert scheduler is not None
        step_executor = DaskExecutor(
            scheduler,
            remote=worker_remote,
            quorum=quorum,
            insecure_allow_tcp=insecure_allow_tcp,
        )
    cache_report = None
    pushed = 0
    with Store.open_store(store_path) as store:
        from reprobuild.index_trust import SIGNED_INDEX, TrustContext, verify_lock

        signed = verify_lock(lock, TrustContext(sources, fetcher, store))

        def run_steps(executor: StepExecutor | None) -> dict[str, StepRecord]:
            return execute(
                graph,
                store,
                jobs=jobs,
                fetcher=fetcher,
                sources=sources,
                recipe_dir=result.evaluator.root_dir,
                progress=progress,
                executor=executor,
            )

        try:
            if cache:
                from reprobuild import cache as remote_cache

                cache_report = remote_cache.fetch(
                    store, cache, graph.steps, create=push_cache, policy=cache_policy
                )
            records = run_steps(step_executor)
        except BaseException:
            if cache and push_cache and cache_report is not None:
                import contextlib

                from reprobuild.errors import ReprobuildError

                with contextlib.suppress(ReprobuildError):  # keep what did finish
                    remote_cache.push(store, cache, graph.steps, policy=cache_policy)
            raise
        finally:
            if step_executor is not None:
                step_executor.close()
        if cache and push_cache:
            pushed = len(
                remote_cache.push(store, cache, graph.steps, policy=cache_policy).updated
            )
        try:
            outputs = export_outputs(store, graph.outputs, records, out_dir)
        except ContentCorrupt as exc:  # a cached output, damaged: removed, so it is made again
            store.intact(exc.sha256)
            done_before = progress.cached + progress.run  # all cached in the second pass
            records = run_steps(None)  # the repair pass runs here, not on the cluster
            progress.cached -= done_before
            outputs = export_outputs(store, graph.outputs, records, out_dir)
        recorded = {o.name: {"sha256": o.sha256, "media_type": o.media_type} for o in outputs}
        if not record:
            from reprobuild.evidence import refuse_changed_digests

            refuse_changed_digests(store, lock.outputs, outputs, lock_file, locked=locked)
        if dict(lock.outputs) != recorded:
            from dataclasses import replace

            from reprobuild.lockdiff import output_changes

            changed_lines = output_changes(lock.outputs, recorded)
            lock = replace(lock, outputs=recorded)
            with no_space_named(lock_file, "lockfile"):
                lf.write(lock_file, lock)
            if changed_lines:
                if not notes:
                    notes.append(f"updated {lock_file}")
                notes += ["  " + line for line in changed_lines]
        from reprobuild.export.describe import describe_images

        describe_images(
            outputs, lock, lock_file, result.evaluator.root_dir,
            list(result.evaluator.files_read.values()), p, epoch,
        )  # fmt: skip
        if attest:
            from reprobuild import attest as at

            for o in outputs:
                statement = at.statement(
                    lock, lock.identity(), recipe_name, o.name, o.sha256, epoch
                )
                if step_executor is not None and quorum > 1:
                    at.add_quorum(
                        statement,
                        quorum,
                        agreements(graph, dict(graph.outputs)[o.name], step_executor.agreed),
                    )
                (out_dir / f"{o.name}.intoto.json").write_text(at.dumps(statement))
        root = result.evaluator.root_dir
        recipe_files = sorted(
            (os.path.relpath(f, root), f) for f in result.evaluator.files_read.values()
        )
        source_outputs = []
        for rel, f in recipe_files:
            blob = store.put_file(f)
            source_outputs.append(Output(rel, blob.sha256, blob.size, "text/x-reprobuild"))
        lock_blob = store.put_file(lock_file)
        from reprobuild.buildref import build_ref_name

        sizes = {o.sha256: o.size for r in records.values() for o in r.outputs}

        def _size(sha256: str) -> int:
            return sizes.get(sha256) or store.size(sha256)

        ref_name = build_ref_name(path)
        ref = store.record_build(
            ref_name,
            BuildRecord(
                recipe=ref_name,
                steps=tuple(sorted(graph.steps)),
                outputs=tuple(
                    Output(o.name, o.sha256, _size(o.sha256), o.media_type)
                    for o in outputs
                ),
                sources=(
                    *source_outputs,
                    Output(
                        os.path.relpath(lock_file, root),
                        lock_blob.sha256,
                        lock_blob.size,
                        "application/json",
                    ),
                    *(
                        Output(f.name, f.sha256, f.size, SIGNED_INDEX)
                        for f in {s.name: s for s in signed}.values()
                    ),
                ),
                meta={"epoch": epoch},
            ),
        )
    return BuildResult(
        recipe_name,
        tuple(outputs),
        len(graph.steps),
        progress.cached,
        progress.run,
        ref,
        lock_file,
        dict(step_executor.ran_on) if step_executor is not None else {},
        dict(step_executor.agreed) if step_executor is not None else {},
        quorum,
        cache_report,
        pushed,
        tuple(notes),
        step_secrets(graph, records),
    )


def verify_lockfile(
    path: Path, *, store_path: Path | None = None, sources: Sources | None = None
) -> None:
    """Check a lockfile against the archives' signed indexes (see index_trust.py)."""
    from reprobuild import lockfile as lf
    from reprobuild.fetch import Fetcher
    from reprobuild.index_trust import TrustContext, verify_lock
    from reprobuild.locking import Sources
    from reprobuild.store import Store

    lock = lf.load(path)
    with Store.open_store(store_path) as store:
        verify_lock(lock, TrustContext(sources or Sources.from_env(), Fetcher(), store))


def push(output: Path, reference: str, *, tls_verify: bool = True) -> str:
    """Push a built OCI layout directory or oci-archive; returns the manifest digest."""
    import tarfile
    import tempfile

    from reprobuild.export.push_referrers import push_referrers
    from reprobuild.export.registry import push_layout

    if output.is_dir():
        digest = push_layout(output, reference, tls_verify=tls_verify)
        push_referrers(output, reference, digest, tls_verify=tls_verify)
        return digest
    with tempfile.TemporaryDirectory(prefix="reprobuild-push-") as tmp:
        with tarfile.open(output) as t:
            from reprobuild.tarextract import extract_all

            extract_all(t, Path(tmp))
        digest = push_layout(Path(tmp), reference, tls_verify=tls_verify)
        push_referrers(Path(tmp), reference, digest, tls_verify=tls_verify)
        return digest


def lock_(path: Path, sources: Sources, fetcher: Fetcher) -> LockResult:
    return lock(path, sources=sources, fetcher=fetcher)


__all__ = [
    "BuildResult",
    "Evaluation",
    "LockResult",
    "RecipeError",
    "build",
    "evaluate",
    "format_file",
    "graph",
    "lock",
    "make_plan",
    "push",
    "show_value",
]
