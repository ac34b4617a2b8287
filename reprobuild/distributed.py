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

import contextlib
import hashlib
import logging
import os
import pickle
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from reprobuild.buildgraph import BuildStep
from reprobuild.claims import (
    Claim,
    ResultRefused,
    WorkerResult,
    agree,
    check_claim,
    describe,
    printable,
)
from reprobuild.errors import EXIT_BAD_INPUT, ReprobuildError, StoreError, UsageError
from reprobuild.execute import Progress, StepContext, make_record, note_mismatch, run_step
from reprobuild.fetch import FetchPolicy
from reprobuild.locking import Sources
from reprobuild.redact import redact
from reprobuild.store import StepRecord, Store

DEFAULT_CONNECT_TIMEOUT = 10.0
CLUSTER_TIMEOUT = "REPROBUILD_CLUSTER_TIMEOUT"
DEFAULT_CLUSTER_TIMEOUT = 60.0


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
    ``record``: record the step in the shared store (not with ``--quorum``,
    where the coordinator records it once the runs agree, nor with a remote).
    """

    store: str
    remote: str | None
    epoch: int
    inputs: Mapping[str, StepRecord]
    sources: Sources
    policy: FetchPolicy
    recipe_dir: str
    record: bool = True


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
    recorded = job.record and job.remote is None
    try:
        if job.remote is None:
            store = _open_shared(job.store)
        else:
            store = Store.open_store(_worker_store(job.remote))
        with store:
            if job.remote is not None:
                _pull_inputs(store, job.remote, job.inputs)
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
            if recorded:
                record, stored = run_step(step, ctx)
            else:
                record = stored = make_record(step, ctx)
            if job.remote is not None:
                from reprobuild.store import transport

                transport.push_content(store, job.remote, [o.blob for o in record.outputs])
    except ReprobuildError as exc:
        return WorkerFailure(redact(exc.message), exc.hint, exc.exit_code)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return WorkerResult(record, stored, _worker_address(), recorded)


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


def _pull_inputs(store: Store, remote: str, inputs: Mapping[str, StepRecord]) -> None:
    """The content of the inputs' outputs, by sha256 (the records come from the
    coordinator, which checked them; the content is re-hashed on the way in)."""
    from reprobuild.store import transport

    blobs = [o.blob for record in inputs.values() for o in record.outputs]
    got = transport.pull_content(store, remote, blobs)
    missing = sorted({b.sha256 for b in blobs} - got)
    if missing:
        raise StoreError(
            f"input content sha256:{missing[0]} is not on {redact(remote)}",
            hint="the coordinator pushes inputs before submitting a step; check the remote",
        )


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # not in a worker (called directly)
        return ""


@dataclass
class _Pending:
    """A submitted step: its runs (task, worker it is pinned to) and checked claims."""

    step: BuildStep
    out: Future[StepRecord]
    progress: Progress
    store: Store
    runs: list[tuple[Any, str | None]] = field(default_factory=list)
    claims: dict[str, Claim] = field(default_factory=dict)


class DaskExecutor:
    """Submits steps to a Dask scheduler and checks what comes back (claims.py).

    ``ran_on`` maps step keys to the worker that ran them; with ``quorum`` N > 1
    each step runs on N distinct workers and ``agreed`` lists them.
    """

    def __init__(
        self,
        scheduler: str,
        *,
        remote: str | None = None,
        quorum: int = 1,
        insecure_allow_tcp: bool = False,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        cluster_timeout: float | None = None,
    ) -> None:
        from reprobuild.cluster_auth import check_address, check_worker_remote, client_security

        cluster = check_address(scheduler, insecure_allow_tcp=insecure_allow_tcp)
        check_worker_remote(remote, cluster)
        if quorum < 1:
            raise UsageError(f"--quorum {quorum}: give a number of workers, at least 1")
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
        security = client_security(cluster)
        self.scheduler = scheduler
        self.remote = remote
        self.quorum = quorum
        self.cluster_timeout = cluster_timeout or cluster_timeout_setting()
        try:
            self.client: Any = _quiet(Client)(
                scheduler, timeout=timeout, set_as_default=False, security=security
            )
        except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {scheduler}: {printable(exc)}",
                hint="start one with 'dask scheduler' and workers with 'dask worker URL', "
                "or build without --executor dask",
            ) from None
        self.ran_on: dict[str, str] = {}
        self.agreed: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._busy: dict[str, int] = {}  # worker -> runs of ours on it (quorum placement)
        self._closed = False
        self._checker = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dask-check")
        self._stop = threading.Event()
        threading.Thread(target=self._watch, name="dask-watch", daemon=True).start()

    # ------------------------------------------------------------------ submit

    def submit(self, step: BuildStep, ctx: StepContext, progress: Progress) -> Future[StepRecord]:
        # The worker makes its own work directory; the coordinator's is not needed.
        shutil.rmtree(ctx.workdir, ignore_errors=True)
        out: Future[StepRecord] = Future()
        out.set_running_or_notify_cancel()
        pending = _Pending(step, out, progress, ctx.store)
        try:
            if self.remote is not None:  # the inputs' content, for the workers to pull
                from reprobuild.store import transport

                blobs = [o.blob for k in step.inputs for o in ctx.inputs[k].outputs]
                transport.push_content(ctx.store, self.remote, blobs)
            job = WorkerJob(
                store=str(ctx.store.path),
                remote=self.remote,
                epoch=ctx.epoch,
                inputs=dict(ctx.inputs),
                sources=ctx.sources,
                policy=ctx.fetcher.policy,
                recipe_dir=str(ctx.recipe_dir),
                record=self.quorum == 1,
            )
            pinned: list[str | None] = list(self._place(step)) if self.quorum > 1 else [None]
            with self._lock:
                self._pending[id(pending)] = pending
            for worker in pinned:
                task = self.client.submit(
                    run_on_worker,
                    step,
                    job,
                    key=f"reprobuild-{step.kind}-{step.key}-{uuid.uuid4().hex[:8]}",
                    pure=False,
                    workers=[worker] if worker else None,
                    allow_other_workers=False,
                )
                pending.runs.append((task, worker))
            for task, worker in pending.runs:
                task.add_done_callback(lambda t, w=worker: self._dispatch(pending, t, w))
        except ReprobuildError as exc:
            self._fail(pending, exc)
        except Exception as exc:
            self._fail(
                pending, ExecutorError(f"cannot submit to {self.scheduler}: {printable(exc)}")
            )
        return out

    def _place(self, step: BuildStep) -> list[str]:
        """N distinct workers for a quorum, the least busy first; waits a bounded time."""
        deadline = time.monotonic() + self.cluster_timeout
        while True:
            workers = self._workers()
            if workers is not None and len(workers) >= self.quorum:
                break
            if time.monotonic() > deadline:
                raise ExecutorError(
                    f"--quorum {self.quorum} needs {self.quorum} distinct workers; the cluster "
                    f"at {self.scheduler} has {len(workers or ())} after "
                    f"{self.cluster_timeout:g} s (for {describe(step)})",
                    hint=f"start more workers, or lower --quorum; {CLUSTER_TIMEOUT} sets the wait",
                )
            time.sleep(0.5)
        with self._lock:
            chosen = sorted(workers, key=lambda w: (self._busy.get(w, 0), w))[: self.quorum]
            for w in chosen:
                self._busy[w] = self._busy.get(w, 0) + 1
        return chosen

    # ------------------------------------------------------------------ results

    def _dispatch(self, pending: _Pending, task: Any, pinned: str | None) -> None:
        """Dask's callback thread (one for all futures) only hands the check over."""
        with contextlib.suppress(RuntimeError):  # closed: the build is over
            if not self._closed:
                self._checker.submit(self._finished, pending, task, pinned)

    def _finished(self, pending: _Pending, task: Any, pinned: str | None) -> None:
        """A run ended: check its claim; with all runs in, agree and record. Never raises."""
        step = pending.step
        try:
            if pinned is not None:
                with self._lock:
                    self._busy[pinned] = max(0, self._busy.get(pinned, 1) - 1)
            if pending.out.done():
                return
            worker = pinned or self._where(task)
            try:
                result = task.result()
            except BaseException as exc:
                raise _cluster_error(exc, self.scheduler, step, worker) from None
            if isinstance(result, WorkerFailure):
                raise _worker_failure(result, step, worker)
            claim = check_claim(step, result, worker, pending.store, remote=self.remote)
            with self._lock:
                pending.claims[worker] = claim
                if len(pending.claims) < len(pending.runs):
                    return
            self._accept(pending)
        except BaseException as exc:
            self._fail(pending, exc)

    def _accept(self, pending: _Pending) -> None:
        step = pending.step
        claims = pending.claims
        if self.quorum > 1:
            record = agree(step, {w: c.record for w, c in claims.items()}, pending.store)
        else:
            record = next(iter(claims.values())).record
        if self._recorded_by_worker():
            stored = next(iter(claims.values())).stored
        else:  # nothing is recorded before the runs agree
            stored = pending.store.record_step(step.key, record)
        with self._lock:
            self.ran_on[step.key] = min(claims)
            self.agreed[step.key] = tuple(sorted(claims))
            self._pending.pop(id(pending), None)
        note_mismatch(pending.progress, step, stored, record)
        pending.out.set_result(record)

    def _recorded_by_worker(self) -> bool:
        return self.quorum == 1 and self.remote is None

    def _where(self, task: Any) -> str:
        """The worker holding a task's result, as the scheduler says (never the result)."""
        try:
            holders = self.client.who_has([task]).get(task.key, ())
        except Exception:
            holders = ()
        return ", ".join(sorted(holders)) or "(unknown: it left the cluster)"

    def _fail(self, pending: _Pending, exc: BaseException) -> None:
        with self._lock:
            self._pending.pop(id(pending), None)
        with contextlib.suppress(InvalidStateError):
            pending.out.set_exception(exc)
        tasks = [t for t, _ in pending.runs if not t.done()]
        if tasks and not self._closed:
            with contextlib.suppress(Exception):
                self.client.cancel(tasks)

    # ------------------------------------------------------------------ watchdog

    def _workers(self) -> set[str] | None:
        """The scheduler's workers now, or None if it does not answer in a few seconds."""
        try:
            info = self.client.sync(
                self.client.scheduler.identity,
                n_workers=-1,
                callback_timeout=min(5.0, self.cluster_timeout),
            )
        except Exception:
            return None
        return set(info.get("workers", {}))

    def _watch(self) -> None:
        """A lost scheduler, a cluster without workers, or a quorum worker gone: each
        fails the steps waiting on it within ``cluster_timeout`` seconds."""
        heard = time.monotonic()
        staffed = time.monotonic()
        while not self._stop.wait(1.0):
            with self._lock:
                pending = list(self._pending.values())
            now = time.monotonic()
            if not pending:
                heard = staffed = now
                continue
            workers = self._workers()
            if workers is None:
                if now - heard > self.cluster_timeout:
                    self._fail_all(
                        ExecutorError(
                            f"lost the Dask scheduler at {self.scheduler}: no answer for "
                            f"{self.cluster_timeout:g} s",
                            hint=f"check the scheduler; {CLUSTER_TIMEOUT} sets how long to wait",
                        )
                    )
                continue
            heard = now
            if workers:
                staffed = now
            elif now - staffed > self.cluster_timeout:
                self._fail_all(
                    ExecutorError(
                        f"the Dask cluster at {self.scheduler} has had no worker for "
                        f"{self.cluster_timeout:g} s",
                        hint=f"start workers; {CLUSTER_TIMEOUT} sets how long to wait",
                    )
                )
            for p in pending:
                for task, worker in p.runs:
                    if worker is not None and worker not in workers and not task.done():
                        self._fail(
                            p,
                            ExecutorError(
                                f"{describe(p.step)}: worker {worker} left the cluster "
                                "while running it",
                                hint="a rerun places it on the workers present then",
                            ),
                        )
                        break

    def _fail_all(self, exc: ExecutorError) -> None:
        with self._lock:
            pending = list(self._pending.values())
        for p in pending:
            self._fail(p, exc)

    # ------------------------------------------------------------------ lifetime

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancel what is still queued and disconnect; safe to call twice."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
            closed, self._closed = self._closed, True
        if closed:
            return
        self._stop.set()
        tasks = [t for p in pending for t, _ in p.runs if not t.done()]
        with contextlib.suppress(Exception):
            if tasks:
                self.client.cancel(tasks)
        self._checker.shutdown(wait=True, cancel_futures=True)
        # Closing cancels the client's attempts to reconnect to a lost scheduler, which
        # Dask logs with a traceback; reprobuild has already said what went wrong.
        quiet = logging.getLogger("distributed.client")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            with contextlib.suppress(Exception):
                self.client.close()
        finally:
            quiet.setLevel(level)


def cluster_timeout_setting() -> float:
    value = os.environ.get(CLUSTER_TIMEOUT, "")
    try:
        seconds = float(value) if value else DEFAULT_CLUSTER_TIMEOUT
    except ValueError:
        raise UsageError(f"{CLUSTER_TIMEOUT}={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise UsageError(f"{CLUSTER_TIMEOUT} must be positive (got {value!r})")
    return seconds


def _quiet(client_class: Any) -> Any:
    """Dask's Client, except that a half-made one (its connection failed) is collected
    without printing a traceback from its ``__del__``."""

    class QuietClient(client_class):  # type: ignore[misc]
        def __del__(self) -> None:
            with contextlib.suppress(Exception):
                super().__del__()

    return QuietClient


def _worker_failure(result: WorkerFailure, step: BuildStep, worker: str) -> ReprobuildError:
    """A worker's own account of an expected failure: text from it, made printable."""
    code = result.exit_code if result.exit_code in (EXIT_BAD_INPUT, 1) else EXIT_BAD_INPUT
    hint = printable(result.hint) if isinstance(result.hint, str) else None
    return RemoteStepError(
        f"{printable(result.message)} (on worker {worker})", hint=hint, exit_code=code
    )


def _cluster_error(
    exc: BaseException, scheduler: str, step: BuildStep, worker: str
) -> BaseException:
    """Lost workers and connections are the cluster's failure, said plainly; a
    result that cannot be read (unpickled) is the worker's; a bug in a runner (any
    other exception raised there) stays itself, as in a local build."""
    from concurrent.futures import CancelledError

    try:
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - distributed is installed if we got here
        return exc
    if isinstance(exc, ImportError):
        return ExecutorError(
            f"Dask worker {worker} of {scheduler} cannot run reprobuild steps: "
            f"{printable(exc)}",
            hint="install the same reprobuild version on every worker",
        )
    if isinstance(exc, KilledWorker | CommClosedError | CancelledError | OSError):
        return ExecutorError(
            f"the Dask cluster at {scheduler} lost {describe(step)} (worker {worker}): "
            f"{type(exc).__name__}: {printable(exc)}",
            hint="check the workers' logs; a rerun reuses every step already recorded",
        )
    if isinstance(exc, pickle.UnpicklingError | EOFError | TypeError | AttributeError):
        return ResultRefused(
            f"{describe(step)}: the result from worker {worker} cannot be read: "
            f"{type(exc).__name__}: {printable(exc)}",
            hint="that worker is broken or hostile: remove it from the cluster",
        )
    return exc


__all__ = [
    "DaskExecutor",
    "ExecutorError",
    "WorkerJob",
    "run_on_worker",
]
