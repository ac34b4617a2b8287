"""``reprobuild replay``: rebuild from a lockfile (or a recorded build) and prove it.

A replay never resolves anything: the lockfile pins every input by sha256, so
a changed or vanished snapshot index does not matter. Inputs come from the
store when it has them, else from the snapshot (canonical URL or mirror).
Every step except the input fetches runs again, and each output's digest is
compared with the one recorded. A replay leaves the lockfile untouched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprobuild import lockfile as lf
from reprobuild.canonical import canonical_json
from reprobuild.errors import LockfileError, ReprobuildError
from reprobuild.fetch import Fetcher
from reprobuild.locking import Sources
from reprobuild.outputs import export_output

if TYPE_CHECKING:
    from reprobuild.execute import Progress


@dataclass(frozen=True)
class ReplayedOutput:
    name: str
    expected: str | None  # None: nothing was recorded for it
    actual: str
    path: Path
    summary: str = ""

    @property
    def identical(self) -> bool:
        return self.expected == self.actual


@dataclass(frozen=True)
class ReplayResult:
    recipe: str
    outputs: tuple[ReplayedOutput, ...]
    step_mismatches: tuple[str, ...]
    report: Path
    embedded: bool = False  # the recipe came from the lockfile, not from a file

    @property
    def identical(self) -> bool:
        return all(o.identical for o in self.outputs) and not self.step_mismatches

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "identical": self.identical,
            "outputs": {
                o.name: {
                    "expected": o.expected,
                    "actual": o.actual,
                    "status": "identical" if o.identical else "differs",
                    "path": str(o.path),
                    "summary": o.summary,
                }
                for o in self.outputs
            },
            "steps_differing_from_store": list(self.step_mismatches),
            "report": str(self.report),
            "embedded_recipe": self.embedded,
        }


def replay(
    target: str,
    *,
    store_path: Path | None = None,
    sources: Sources | None = None,
    fetcher: Fetcher | None = None,
    out_dir: Path | None = None,
    jobs: int | None = None,
    recipe: Path | None = None,
    embedded_recipe: bool = False,
    on_note: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay a lockfile path or a build reference (``refs/builds/NAME/N``, ``NAME/N``).

    The recipe replayed is the one the user gives (*recipe*, else the file
    beside the lockfile). The copy a lockfile may embed is used only with
    *embedded_recipe*, or when there is no recipe file, and *on_note* is then
    told so: a lockfile never silently swaps the recipe a user points at.
    """
    path = Path(target)
    used_embedded = False
    if path.exists() or target.endswith(".lock"):
        recipe_path, lock, tmp = _from_lockfile(path, recipe, embedded_recipe, on_note)
        used_embedded = tmp is not None
        expected = {k: v.get("sha256") for k, v in lock.outputs.items()}
    else:
        recipe_path, lock, tmp, expected = _from_build(target, store_path)
    try:
        result = _run(
            recipe_path, lock, expected, store_path, sources, fetcher, out_dir, jobs, progress
        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return replace(result, embedded=used_embedded)


def _from_lockfile(
    path: Path,
    recipe: Path | None,
    embedded: bool,
    on_note: Callable[[str], None] | None,
) -> tuple[Path, lf.Lockfile, tempfile.TemporaryDirectory[str] | None]:
    lock = lf.load(path)
    beside = recipe or path.with_name(path.name.removesuffix(".lock"))
    if embedded and not lock.embedded:
        raise LockfileError(
            f"{path}: --embedded-recipe, but the lockfile embeds no recipe",
            hint="lock with --embed-recipe, or replay the recipe file",
        )
    if not embedded and beside.exists():
        return beside, lock, None
    if not lock.embedded:
        raise LockfileError(
            f"{path}: the recipe {beside.name} is not beside the lockfile and the lockfile "
            "does not embed it",
            hint="keep the recipe next to its lockfile, or lock with --embed-recipe",
        )
    if on_note is not None:
        why = "as asked" if embedded else f"there is no {beside}"
        on_note(f"replaying the recipe embedded in {path} ({why})")
    tmp = tempfile.TemporaryDirectory(prefix="reprobuild-replay-")
    root = Path(tmp.name)
    for rel, text in lock.embedded.items():
        dest = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise LockfileError(f"{path}: embedded recipe file {rel!r} leaves the recipe tree")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
    top = root / path.name.removesuffix(".lock")
    (root / path.name).write_text(lock.dumps(), encoding="utf-8")
    return top, lock, tmp


def _from_build(
    spec: str, store_path: Path | None
) -> tuple[Path, lf.Lockfile, tempfile.TemporaryDirectory[str], dict[str, str | None]]:
    from reprobuild.index_trust import SIGNED_INDEX
    from reprobuild.store import Store

    with Store.open_store(store_path, create=False) as store:
        info = store.read_build(spec)
        record = info.record
        tmp = tempfile.TemporaryDirectory(prefix="reprobuild-replay-")
        root = Path(tmp.name)
        lock_path = None
        for src in record.sources:
            if src.media_type == SIGNED_INDEX:  # read from the store by hash when verified
                continue
            dest = root / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            store.export(src.sha256, dest)
            if src.name.endswith(".lock"):
                lock_path = dest
    if lock_path is None:
        raise LockfileError(f"build {spec} recorded no lockfile; it cannot be replayed")
    expected: dict[str, str | None] = {o.name: o.sha256 for o in record.outputs}
    return (
        lock_path.with_name(lock_path.name.removesuffix(".lock")),
        lf.load(lock_path),
        tmp,
        expected,
    )


def _run(
    recipe: Path,
    lock: lf.Lockfile,
    expected: Mapping[str, str | None],
    store_path: Path | None,
    sources: Sources | None,
    fetcher: Fetcher | None,
    out_dir: Path | None,
    jobs: int | None,
    progress: Progress | None = None,
) -> ReplayResult:
    from reprobuild import api
    from reprobuild.buildgraph import expand
    from reprobuild.execute import Progress, execute
    from reprobuild.store import Store

    pr = api.planned(recipe)
    result, p = pr.evaluation, pr.plan
    state = pr.staleness(lock)
    if state.stale:
        hint = "a replay rebuilds exactly what a lockfile pins; lock the recipe anew to build it"
        if lock.embedded:
            hint += ", or pass --embedded-recipe to replay the copy the lockfile carries"
        raise LockfileError(
            f"the lockfile does not describe {recipe}: " + "; ".join(state.reasons), hint=hint
        )
    epoch = api.build_epoch(lock)
    graph = expand(p, lock, epoch)
    name = recipe.name.removesuffix(".repro")
    out_dir = out_dir or Path("out") / f"{name}-replay"
    progress = progress or Progress()
    fetcher = fetcher or Fetcher()
    if fetcher.on_bytes is None:
        fetcher.on_bytes = progress.on_bytes or progress.add_bytes
    sources = sources or Sources.from_env()
    api.require_tools(p, command="replay", locking=True, signed=not sources.insecure)
    with Store.open_store(store_path) as store:
        from reprobuild.index_trust import TrustContext, verify_lock

        verify_lock(lock, TrustContext(sources, fetcher, store))
        records = execute(
            graph,
            store,
            jobs=jobs,
            fetcher=fetcher,
            sources=sources,
            recipe_dir=result.evaluator.root_dir,
            progress=progress,
            rebuild=True,
        )
        outputs = []
        for out_name, key in graph.outputs:
            record = records[key]
            actual = record.outputs[0].sha256
            dest = export_output(store, record, out_name, out_dir)
            want = expected.get(out_name)
            summary = ""
            if want is not None and want != actual:
                summary = _summarise(store, want, record.outputs[0].sha256, out_dir, out_name)
            outputs.append(ReplayedOutput(out_name, want, actual, dest, summary))
    mismatches = tuple(
        f"{step.kind} '{step.name}': stored {stored.outputs[0].sha256[:16]}.., "
        f"replayed {mine.outputs[0].sha256[:16]}.."
        for step, stored, mine in progress.mismatches
        if stored.outputs and mine.outputs
    )
    report = out_dir / "replay-report.json"
    res = ReplayResult(name, tuple(outputs), mismatches, report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(canonical_json(res.to_json(), document=True))
    return res


def _summarise(store: Any, expected: str, actual: str, out_dir: Path, name: str) -> str:
    """A few lines saying what differs, when the recorded artifact is at hand."""
    if not store.has(expected):
        return "the recorded artifact is not in this store; pull the original store to diff it"
    try:
        from reprobuild.diff import compare, render_text
    except ImportError:  # pragma: no cover - diff ships with reprobuild
        return "differs"
    exp = out_dir / f".{name}.expected"
    store.export(expected, exp)
    try:
        with store.materialized(actual) as act:
            difference = compare(exp, act)
    except ReprobuildError as exc:
        return f"could not compare: {exc.message}"
    finally:
        exp.unlink(missing_ok=True)
    if difference is None:
        return "differs"
    lines = render_text(difference).splitlines()
    return "\n".join(lines[:12])
