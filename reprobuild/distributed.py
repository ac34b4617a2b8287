"""Steps on a Dask distributed cluster (``build --executor dask --scheduler URL``).

Dask only places work: the scheduling loop, the cache checks and failure
handling stay in :func:`reprobuild.execute.execute`, which hands each step
that must run to :class:`DaskExecutor`. A worker rebuilds the step's context
from plain values (:class:`WorkerJob`), opens the store the coordinator uses
by its path (so it must be on storage the workers share, at the same path,
as must the recipe directory), runs the step with the same runner a local
build uses, records it there and returns the record. The store is safe for
concurrent writers across processes (content files plus compare-and-swap
refs under flock), and a step's bytes depend only on its key's inputs, so
the result is identical to a local build.

Workers without shared storage use a git remote instead (``--worker-remote``):
each keeps a store of its own in its Dask local directory, pulls the records
and content of the step's inputs from the remote (re-hashed on the way in,
see cache.py), runs the step and pushes its record. The coordinator pushes
the inputs it already had before submitting a step, and pulls the results
when the steps are done, so its store ends as after a local build.

Dask is imported only here, and only when this executor is asked for.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from reprobuild.buildgraph import BuildStep
from reprobuild.errors import EXIT_BAD_INPUT, ReprobuildError, StoreError
from reprobuild.execute import Progress, StepContext, note_mismatch, run_step
from reprobuild.fetch import FetchPolicy
from reprobuild.locking import Sources
from reprobuild.store import StepRecord, Store

DEFAULT_CONNECT_TIMEOUT = 10.0


class ExecutorError(ReprobuildError):
    """The cluster could not be used (unreachable scheduler, lost worker, no Dask)."""


class RemoteStepError(ReprobuildError):
    """An expected failure of a step on a worker, carried back with its exit code."""

    def __init__(
        self, message: str, *, hint: str | None = None, exit_code: int = EXIT_BAD_INPUT
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs besides the step to rebuild its StepContext: plain values.

    ``remote`` set: exchange inputs and outputs through that git remote, and
    ``store`` is unused; otherwise open the shared store at path ``store``.
    """

    store: str
    remote: str | None
    epoch: int
    inputs: Mapping[str, StepRecord]
    sources: Sources
    policy: FetchPolicy
    recipe_dir: str


@dataclass(frozen=True)
class WorkerResult:
    """A step's record, the store's record for its key, and where it ran."""

    record: StepRecord
    stored: StepRecord
    worker: str


@dataclass(frozen=True)
class WorkerFailure:
    """An expected failure, as plain values (any exception class need not unpickle)."""

    message: str
    hint: str | None
    exit_code: int


def run_on_worker(step: BuildStep, job: WorkerJob) -> WorkerResult | WorkerFailure:
    """The Dask task: one step, in a private work directory of the worker's machine."""
    from reprobuild.fetch import Fetcher

    # As in execute(): files steps create must not depend on the worker's umask.
    os.umask(0o022)
    tmp = Path(tempfile.mkdtemp(prefix="reprobuild-worker-"))
    try:
        if job.remote is None:
            store = _open_shared(job.store)
        else:
            store = Store.open_store(_worker_store(job.remote))
        with store:
            if job.remote is not None:
                _pull_inputs(store, job.remote, step.inputs)
            ctx = StepContext(
                store=store,
                workdir=tmp / "step",
                epoch=job.epoch,
                inputs=job.inputs,
                fetcher=Fetcher(job.policy),
                sources=job.sources,
                recipe_dir=Path(job.recipe_dir),
            )
            ctx.workdir.mkdir()
            record, stored = run_step(step, ctx)
            if job.remote is not None:
                _push_result(store, job.remote, step.key)
    except ReprobuildError as exc:
        return WorkerFailure(exc.message, exc.hint, exc.exit_code)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return WorkerResult(record, stored, _worker_address())


def _open_shared(path: str) -> Store:
    try:
        return Store.open_store(path, create=False)
    except StoreError as exc:
        raise StoreError(
            f"a Dask worker cannot open the store at {path}: {exc.message}",
            hint="workers must see the store at the same path (shared storage); "
            "or let them exchange through a git remote with --worker-remote",
        ) from None


def _worker_store(remote: str) -> Path:
    """This worker's own store for ``remote``: in the Dask worker's local directory
    (removed with the worker), kept across tasks so inputs are pulled once."""
    name = "reprobuild-store-" + hashlib.sha256(remote.encode()).hexdigest()[:16]
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory) / name
    except (ImportError, ValueError):
        return Path(tempfile.gettempdir()) / f"{name}-{os.getpid()}"


def _pull_inputs(store: Store, remote: str, keys: tuple[str, ...]) -> None:
    from reprobuild import cache

    report = cache.fetch(store, remote, keys)
    missing = [k for k in keys if store.lookup_step(k) is None]
    if missing:
        why = dict(report.refused)
        raise StoreError(
            f"input step {missing[0]} is not usable from {remote}"
            + (f": {why[missing[0]]}" if missing[0] in why else ""),
            hint="the coordinator pushes inputs before submitting a step; check the remote",
        )


def _push_result(store: Store, remote: str, key: str) -> None:
    from reprobuild import cache

    cache.push(store, remote, [key], retry=True)


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not in a worker (called directly)
        return ""


class DaskExecutor:
    """Submits steps to a Dask scheduler; ``ran_on`` maps step keys to worker addresses."""

    def __init__(
        self,
        scheduler: str,
        *,
        remote: str | None = None,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ExecutorError(
                "--executor dask needs Dask distributed, which is not installed",
                hint="pip install 'reprobuild[distributed]'",
            ) from None
        import dask.config
        from dask.utils import parse_timedelta

        # Dask's own setting (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT) may shorten it.
        configured = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"))
        timeout = min(timeout, configured) if configured else timeout
        self.scheduler = scheduler
        self.remote = remote
        self._store: Store | None = None
        try:
            self.client: Any = Client(  # type: ignore[no-untyped-call]
                scheduler, timeout=timeout, set_as_default=False
            )
        except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}",
                hint="start one with 'dask scheduler' and workers with 'dask worker URL', "
                "or build without --executor dask",
            ) from None
        self.ran_on: dict[str, str] = {}
        self._lock = threading.Lock()
        self._pending: set[Any] = set()
        self._closed = False

    def submit(self, step: BuildStep, ctx: StepContext, progress: Progress) -> Future[StepRecord]:
        # The worker makes its own work directory; the coordinator's is not needed.
        shutil.rmtree(ctx.workdir, ignore_errors=True)
        out: Future[StepRecord] = Future()
        out.set_running_or_notify_cancel()
        if self.remote is not None:
            from reprobuild import cache

            self._store = ctx.store
            try:  # inputs this store had (cached) must be on the remote for the worker
                cache.push(ctx.store, self.remote, step.inputs, retry=True)
            except ReprobuildError as exc:
                out.set_exception(exc)
                return out
        job = WorkerJob(
            store=str(ctx.store.path),
            remote=self.remote,
            epoch=ctx.epoch,
            inputs=dict(ctx.inputs),
            sources=ctx.sources,
            policy=ctx.fetcher.policy,
            recipe_dir=str(ctx.recipe_dir),
        )
        try:
            task = self.client.submit(
                run_on_worker,
                step,
                job,
                key=f"reprobuild-{step.kind}-{step.key}-{uuid.uuid4().hex[:8]}",
                pure=False,
            )
        except Exception as exc:
            out.set_exception(ExecutorError(f"cannot submit to {self.scheduler}: {exc}"))
            return out
        with self._lock:
            self._pending.add(task)

        def done(task: Any) -> None:
            with self._lock:
                self._pending.discard(task)
            try:
                result = task.result()
            except Exception as exc:
                out.set_exception(_cluster_error(exc, self.scheduler))
                return
            if isinstance(result, WorkerFailure):
                out.set_exception(
                    RemoteStepError(result.message, hint=result.hint, exit_code=result.exit_code)
                )
                return
            with self._lock:
                self.ran_on[step.key] = result.worker
            note_mismatch(progress, step, result.stored, result.record)
            out.set_result(result.record)

        task.add_done_callback(done)
        return out

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        if kind is None:
            self.collect()

    def collect(self) -> None:
        """Pull what the workers pushed to the remote into the coordinator's store."""
        if self.remote is None or self._store is None or not self.ran_on:
            return
        from reprobuild import cache

        keys = sorted(self.ran_on)
        report = cache.fetch(self._store, self.remote, keys)
        missing = [k for k in keys if self._store.lookup_step(k) is None]
        if missing:
            why = dict(report.refused).get(missing[0], "it is not there")
            raise StoreError(
                f"cannot bring step {missing[0]} back from {self.remote}: {why}",
                hint="a rerun builds only what is missing",
            )

    def close(self) -> None:
        """Cancel what is still queued and disconnect; safe to call twice."""
        with self._lock:
            pending, self._pending = list(self._pending), set()
            closed, self._closed = self._closed, True
        if closed:
            return
        if pending:
            self.client.cancel(pending)
        self.client.close()


def _cluster_error(exc: BaseException, scheduler: str) -> BaseException:
    """Lost workers and connections are the cluster's failure, said plainly; a bug
    in a runner (any other exception) stays itself, as in a local build."""
    from concurrent.futures import CancelledError

    try:
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - distributed is installed if we got here
        return exc
    if isinstance(exc, ImportError):
        return ExecutorError(
            f"a Dask worker of {scheduler} cannot run reprobuild steps: {exc}",
            hint="install the same reprobuild version on every worker",
        )
    if isinstance(exc, KilledWorker | CommClosedError | CancelledError | OSError):
        return ExecutorError(
            f"the Dask cluster at {scheduler} lost the step: {type(exc).__name__}: {exc}",
            hint="check the workers' logs; a rerun reuses every step already recorded",
        )
    return exc


__all__ = [
    "DaskExecutor",
    "ExecutorError",
    "WorkerJob",
    "run_on_worker",
]
