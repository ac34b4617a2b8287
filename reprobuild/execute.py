"""The scheduler: runs ready steps in parallel, skips what the store has.

A step whose effective key has a record in the store is *cached* and never
runs again. Others run as soon as their inputs are done, up to ``jobs`` at
once, in threads (the work is I/O and subprocesses). The first failure stops
new steps from starting, lets running ones finish, and is reported with the
step that failed.
"""

from __future__ import annotations

import functools
import importlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from reprobuild.buildgraph import BuildGraph, BuildStep
from reprobuild.errors import DiskFull, ReprobuildError
from reprobuild.fetch import Fetcher
from reprobuild.locking import Sources
from reprobuild.store import Output, StepRecord, Store

# kind -> module in reprobuild.steps providing ``run(step, ctx) -> tuple[Output, ...]``
RUNNERS = {
    "fetch": "reprobuild.steps.fetching",
    "index": "reprobuild.steps.fetching",
    "fetchurl": "reprobuild.steps.fetching",
    "file": "reprobuild.steps.fetching",
    "snapshot": "reprobuild.steps.fetching",
    "rootfs": "reprobuild.steps.rootfs",
    "tarball": "reprobuild.steps.archives",
    "run": "reprobuild.steps.run",
    "oci_image": "reprobuild.steps.images",
    "image_index": "reprobuild.steps.images",
    "iso9660": "reprobuild.steps.images",
    "disk_image": "reprobuild.steps.images",
    "cpio": "reprobuild.steps.images",
    "squashfs": "reprobuild.steps.images",
}


# Steps that bring inputs in (their keys are what they fetch): never rebuilt.
INPUT_KINDS = frozenset({"fetch", "index", "snapshot", "fetchurl", "file"})


class StepFailed(ReprobuildError):
    """A step failed; the message names it and says why."""


class Runner(Protocol):
    """What runs one kind of step: ``run_KIND(step, params, ctx)``, *params* the
    kind's typed parameters (reprobuild.stepparams), checked before it is called."""

    def __call__(self, step: BuildStep, params: Any, ctx: StepContext) -> tuple[Output, ...]: ...


@dataclass
class StepContext:
    """What a step may use: its inputs' records, the store, a private work dir."""

    store: Store
    workdir: Path
    epoch: int
    inputs: Mapping[str, StepRecord]
    fetcher: Fetcher
    sources: Sources
    recipe_dir: Path
    log: Callable[[str], None] = lambda msg: None
    # per-machine secrets the step left in its tree ("/PATH: why"): kept in
    # its record, so a cached step still reports them
    secrets: list[str] = field(default_factory=list)

    def input(self, key: str) -> StepRecord:
        return self.inputs[key]


class StepExecutor(Protocol):
    """Where a ready step runs: the local thread pool, or a cluster (distributed.py).

    ``submit`` returns a future of the step's record; the executor records the
    step in ``ctx.store`` (see :func:`run_step`) and notes a mismatch with an
    earlier record of the same key in ``progress``. The scheduling loop stays
    in :func:`execute`, so every executor skips, orders and fails alike.
    """

    def submit(
        self, step: BuildStep, ctx: StepContext, progress: Progress
    ) -> Future[StepRecord]: ...

    def __enter__(self) -> StepExecutor: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class LocalExecutor:
    """Steps in threads of this process (the work is I/O and subprocesses)."""

    def __init__(self, jobs: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="step")

    def submit(self, step: BuildStep, ctx: StepContext, progress: Progress) -> Future[StepRecord]:
        return self._pool.submit(_run_one, step, ctx, progress)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class Progress:
    """Counters the CLI shows; callbacks must be cheap and thread-safe."""

    total: int = 0
    cached: int = 0
    run: int = 0
    on_event: Callable[[str, BuildStep], None] = lambda event, step: None
    lock: threading.Lock = field(default_factory=threading.Lock)
    mismatches: list[tuple[BuildStep, StepRecord, StepRecord]] = field(default_factory=list)
    on_phase: Callable[[BuildStep, str], None] = lambda step, text: None
    fetched: int = 0  # bytes downloaded (Fetcher.on_bytes)
    on_bytes: Callable[[int], None] | None = None  # a display's hook; default add_bytes

    def phase(self, step: BuildStep, text: str) -> None:
        """What a running step is doing now (its ``ctx.log`` lines)."""
        self.on_phase(step, text)

    def add_bytes(self, n: int) -> None:
        with self.lock:
            self.fetched += n

    def event(self, event: str, step: BuildStep) -> None:
        with self.lock:
            if event == "cached":
                self.cached += 1
            elif event == "done":
                self.run += 1
        self.on_event(event, step)


def _known_kind(kind: str) -> str:
    module = RUNNERS.get(kind)
    if module is None:
        raise StepFailed(
            f"building {kind} steps is not implemented yet in this version of reprobuild",
            hint="the step graph is still available with 'reprobuild graph'",
        )
    return module


def runner_for(kind: str) -> Runner:
    module = _known_kind(kind)
    fn: Runner = getattr(importlib.import_module(module), f"run_{kind}")
    return fn


def execute(
    graph: BuildGraph,
    store: Store,
    *,
    jobs: int | None = None,
    fetcher: Fetcher | None = None,
    sources: Sources | None = None,
    recipe_dir: Path,
    progress: Progress | None = None,
    rebuild: bool = False,
    executor: StepExecutor | None = None,
) -> dict[str, StepRecord]:
    """Run (or find in the store) every step; returns each step's record.

    With ``rebuild``, only inputs (fetch and snapshot steps) come from the
    store: every other step runs again, and the records returned are what
    this run made, even where the store already held a record for the key
    (a replay compares them; ``Progress.mismatches`` names the steps whose
    bytes differ from the stored record).

    ``executor`` runs the steps that must run (default: ``jobs`` local threads).
    """
    jobs = max(1, jobs or os.cpu_count() or 1)
    fetcher = fetcher or Fetcher()
    sources = sources or Sources()
    progress = progress or Progress()
    progress.total = len(graph.steps)
    records: dict[str, StepRecord] = {}
    order = graph.order()
    for step in order:  # unknown kinds fail before any work starts (imported when run)
        _known_kind(step.kind)
    waiting = {s.key: set(s.inputs) for s in order}
    trust = _CachedOutputs(store)
    failure: BaseException | None = None
    failed_step: BuildStep | None = None
    tmp_root = Path(tempfile.mkdtemp(prefix="reprobuild-build-"))
    # Files steps create must not depend on the caller's umask (it is
    # process-wide, so it is set once here rather than in each thread).
    old_umask = os.umask(0o022)
    running: dict[Future[StepRecord], BuildStep] = {}
    try:
        with executor or LocalExecutor(jobs) as pool:
            while waiting or running:
                if failure is None:
                    ready = [s for s in order if s.key in waiting and not waiting[s.key]]
                    for step in ready:
                        if waiting[step.key]:  # held back: a damaged input runs first
                            continue
                        del waiting[step.key]
                        cached = (
                            None
                            if rebuild and step.kind not in INPUT_KINDS
                            else store.lookup_step(step.key)
                        )
                        if cached is not None and step.kind == "fetch":
                            cached = _verified_input(store, cached)
                            if cached is not None:
                                trust.verified.add(step.key)
                                _signed_input(step, store, cached, sources)
                        if cached is not None and all(store.has(o.sha256) for o in cached.outputs):
                            records[step.key] = cached
                            trust.cached.add(step.key)
                            progress.event("cached", step)
                            _release(waiting, step.key)
                            continue
                        damaged = trust.damaged_inputs(step, records)
                        if damaged:  # rebuild those first, then this step
                            _requeue(step, damaged, graph.steps, waiting, records, progress)
                            continue
                        ctx = StepContext(
                            store=store,
                            workdir=Path(tempfile.mkdtemp(dir=tmp_root, prefix="step-")),
                            epoch=graph.epoch,
                            inputs={k: records[k] for k in step.inputs},
                            fetcher=fetcher,
                            sources=sources,
                            recipe_dir=recipe_dir,
                        )
                        if executor is None:  # a cluster's contexts travel: no closures
                            ctx.log = functools.partial(progress.phase, step)
                        progress.event("start", step)
                        running[pool.submit(step, ctx, progress)] = step
                    if any(s.key in waiting and not waiting[s.key] for s in order):
                        continue  # cached steps made more steps ready
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    step = running.pop(fut)
                    try:
                        records[step.key] = fut.result()
                    except BaseException as exc:
                        if failure is None:
                            failure, failed_step = exc, step
                        continue
                    progress.event("done", step)
                    _release(waiting, step.key)
    finally:
        os.umask(old_umask)
        shutil.rmtree(tmp_root, ignore_errors=True)
    if failure is not None:
        assert failed_step is not None
        if isinstance(failure, OSError):  # the machine's state (a full disk, ...), not a bug
            from reprobuild.oserrors import fullest, project_error

            place = fullest([tmp_root, store.path]) if failure.filename is None else None
            failure = project_error(
                failure,
                where=(tmp_root, store.path),
                what="the build's temporary files, under TMPDIR" if place == tmp_root else "",
            )
        if isinstance(failure, StepFailed):  # already names the step (a cluster's checks)
            raise failure
        if isinstance(failure, DiskFull):
            raise DiskFull(
                f"{failed_step.kind} step '{failed_step.name}' failed: {failure.message}",
                hint=failure.hint,
            ) from failure
        if isinstance(failure, ReprobuildError):
            raise StepFailed(
                f"{failed_step.kind} step '{failed_step.name}' failed: {failure.message}",
                hint=failure.hint,
            ) from failure
        raise failure
    return records


def _verified_input(store: Store, record: StepRecord) -> StepRecord | None:
    """Inputs are re-hashed before each build uses them: a damaged object is
    removed and the fetch step runs again, instead of building it into an image."""
    return record if all([store.intact(o.sha256) for o in record.outputs]) else None


def _signed_input(step: BuildStep, store: Store, record: StepRecord, sources: Sources) -> None:
    """A stored package that carries its own signature is verified again at each use."""
    from reprobuild.stepparams import FetchParams
    from reprobuild.steps.fetching import check_package_signature

    try:
        params = step.params_as(FetchParams)
        check_package_signature(params, store.path_of(record.outputs[0].sha256), sources)
    except ReprobuildError as exc:
        raise StepFailed(
            f"{step.kind} step '{step.name}' failed: {exc.message}", hint=exc.hint
        ) from exc


class _CachedOutputs:
    """Which cached records this build has re-hashed, so damage is caught at use.

    A cached step's outputs are trusted while nothing reads them. They are
    re-hashed (once per build) when a step that must run takes them as
    input, since that step would read them anyway; fetched inputs are
    re-hashed at lookup (``_verified_input``); what a build exports is
    checked by the export's own copy (``Store.export`` hashes as it copies).
    So a fully cached build re-hashes nothing it does not copy out, and a
    damaged object costs a rebuild of its step instead of a bad image.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cached: set[str] = set()  # records taken from the store by this build
        self.verified: set[str] = set()  # ... and re-hashed since

    def damaged_inputs(self, step: BuildStep, records: Mapping[str, StepRecord]) -> list[str]:
        """Cached inputs of ``step`` with a damaged output (removed from the store)."""
        damaged = []
        for key in step.inputs:
            if key not in self.cached or key in self.verified:
                continue
            # every output is checked (not all() short-circuiting): each damaged one goes
            if all([self.store.intact(o.sha256) for o in records[key].outputs]):
                self.verified.add(key)
            else:
                self.cached.discard(key)
                damaged.append(key)
        return damaged


def _requeue(
    step: BuildStep,
    damaged: list[str],
    steps: Mapping[str, BuildStep],
    waiting: dict[str, set[str]],
    records: dict[str, StepRecord],
    progress: Progress,
) -> None:
    """Run the ``damaged`` cached steps again (their store objects are gone, so
    the lookup misses), and hold back ``step`` and every other step not yet
    started that uses them until they are done."""
    for key in damaged:
        del records[key]
        for other, deps in waiting.items():
            if key in steps[other].inputs:
                deps.add(key)
        waiting[key] = set()  # its own inputs are all done
    waiting[step.key] = set(damaged)
    with progress.lock:
        progress.cached -= len(damaged)


def _release(waiting: dict[str, set[str]], key: str) -> None:
    for deps in waiting.values():
        deps.discard(key)


def _run_one(step: BuildStep, ctx: StepContext, progress: Progress) -> StepRecord:
    record, stored = run_step(step, ctx)
    note_mismatch(progress, step, stored, record)
    return record


def note_mismatch(
    progress: Progress, step: BuildStep, stored: StepRecord, record: StepRecord
) -> None:
    """The same key made different bytes: not reproducible. The store keeps
    the first record; this run's record is what the caller compares."""
    if stored.outputs != record.outputs:
        with progress.lock:
            progress.mismatches.append((step, stored, record))


def run_step(step: BuildStep, ctx: StepContext) -> tuple[StepRecord, StepRecord]:
    """Run one step and record it in ``ctx.store``: (this run's record, the stored one).

    Self-contained so that a worker process can call it with a context it built.
    """
    record = make_record(step, ctx)
    return record, ctx.store.record_step(step.key, record)


def make_record(step: BuildStep, ctx: StepContext) -> StepRecord:
    """Run one step, its outputs in ``ctx.store``, and return its record unrecorded
    (a cluster with ``--quorum`` records a step only once its runs agree)."""
    outputs = runner_for(step.kind)(step, step.params, ctx)
    record = StepRecord(
        kind=step.kind,
        key=step.key,
        inputs=step.inputs,
        outputs=outputs,
        versions=step_versions(step),
        params={
            "name": step.name,
            "plan_key": step.plan_key or "",
            **({"secrets": list(ctx.secrets)} if ctx.secrets else {}),
        },
    )
    shutil.rmtree(ctx.workdir, ignore_errors=True)
    return record


def step_versions(step: BuildStep) -> dict[str, str]:
    """What the step's output bytes depend on besides its inputs (plan.shaping_versions)."""
    from reprobuild.plan import shaping_versions

    compression = getattr(step.params, "compression", None)
    return shaping_versions(step.kind, {} if compression is None else {"compression": compression})
