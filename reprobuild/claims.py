"""A worker's result is a claim until the coordinator has checked it.

What comes back from a Dask worker is whatever that worker chose to send.
Before a step counts as done, :func:`check_claim` requires that the result
is a step result; that its record is, read back from its canonical bytes, the
record of the submitted step (key, kind, inputs); that every output it names
is in the store (the shared one, or pulled from ``--worker-remote``, hashed
on the way in) with the claimed size and re-hashes to its digest; and, when
the worker recorded the step in a shared store, that the store holds what it
claims. With ``--quorum N``, :func:`agree` accepts a step only when N
distinct workers made identical outputs, and otherwise names the first path
that differs (reprobuild's own tree diff). Every refusal names the step and
the worker's address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprobuild.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, ReprobuildError
from reprobuild.execute import StepFailed
from reprobuild.store import Output, StepRecord, Store

if TYPE_CHECKING:
    from reprobuild.buildgraph import BuildStep

_CONTROL = {c: None for c in range(32) if c not in (9, 10)} | {127: None}


@dataclass(frozen=True)
class WorkerResult:
    """A step's record, the store's record for its key, and where it ran (a claim:
    checked by check_claim). ``recorded``: the worker recorded it in the shared store."""

    record: StepRecord
    stored: StepRecord
    worker: str
    recorded: bool = True


class ResultRefused(StepFailed):
    """A worker's result is not what it must be: the step fails (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class QuorumDisagreement(StepFailed):
    """The workers of a quorum made different bytes: not reproducible (exit 1)."""

    exit_code = EXIT_CHECK_FAILED


@dataclass(frozen=True)
class Claim:
    """A checked result: the record of this run, and the store's record of the key
    (equal unless the store already held other bytes for it: not reproducible)."""

    record: StepRecord
    stored: StepRecord
    worker: str


def describe(step: BuildStep) -> str:
    return f"{step.kind} step '{step.name}'"


def printable(text: object, limit: int = 2000) -> str:
    """Text from a worker, safe to print: no control characters, bounded."""
    out = str(text).translate(_CONTROL)
    return out if len(out) <= limit else out[:limit] + "…"


def _canonical(value: object, what: str) -> StepRecord:
    """A record read back from its canonical bytes: an unpickled object skipped every
    check its constructor makes, so it is rebuilt through them."""
    if not isinstance(value, StepRecord):
        raise ValueError(f"its {what} is a {type(value).__name__}, not a step record")
    try:
        return StepRecord.from_bytes(value.to_bytes())
    except ReprobuildError as exc:
        raise ValueError(f"its {what} is malformed: {exc.message}") from None
    except Exception as exc:  # a field of the wrong type, ...
        raise ValueError(f"its {what} is malformed ({type(exc).__name__})") from None


def check_claim(
    step: BuildStep,
    result: Any,
    worker: str,
    store: Store,
    *,
    remote: str | None,
) -> Claim:
    """Check one worker's result for ``step``; raise ResultRefused naming both."""
    def refuse(why: str) -> ResultRefused:
        return ResultRefused(
            f"{describe(step)}: the result from worker {worker} is refused: {why}",
            hint="that worker is broken or hostile: remove it from the cluster; "
            "--quorum N runs each step on N workers and compares their bytes",
        )

    if not isinstance(result, WorkerResult):
        raise refuse(f"it is a {printable(type(result).__name__, 80)}, not a step result")
    try:
        record = _canonical(result.record, "record")
        stored = _canonical(result.stored, "stored record")
    except ValueError as exc:
        raise refuse(str(exc)) from None
    for r in (record, stored):
        if r.key != step.key:
            raise refuse(f"it is the record of step {r.key}, not of {step.key}")
        if r.kind != step.kind or tuple(r.inputs) != tuple(step.inputs):
            raise refuse("its record names another kind of step or other inputs")
    if remote is not None:
        _pull(store, remote, record.outputs, refuse)
    for o in record.outputs:
        _check_output(store, o, refuse)
    if result.recorded:
        here = store.lookup_step(step.key)
        if here is None:
            raise refuse("it says it recorded the step, but the store has no record of it")
        if here != stored:
            raise refuse(
                "the store's record of the step is not the one it claims ("
                + ", ".join(f"{o.name} sha256:{o.sha256}" for o in stored.outputs)
                + ")"
            )
    return Claim(record, stored, worker)


def _pull(store: Store, remote: str, outputs: tuple[Output, ...], refuse: Any) -> None:
    from reprobuild.store import transport

    try:
        transport.pull_content(store, remote, [o.blob for o in outputs])
    except ReprobuildError as exc:
        raise refuse(f"its outputs cannot be brought from the remote: {exc.message}") from None


def _check_output(store: Store, o: Output, refuse: Any) -> None:
    if not store.has(o.sha256):
        raise refuse(f"output {o.name!r} names content sha256:{o.sha256} the store does not have")
    if store.size(o.sha256) != o.size:
        raise refuse(
            f"output {o.name!r}: sha256:{o.sha256} has {store.size(o.sha256)} bytes, "
            f"the result claims {o.size}"
        )
    if not store.intact(o.sha256):
        raise refuse(f"output {o.name!r}: the content does not hash to sha256:{o.sha256}")


def agree(step: BuildStep, claims: Mapping[str, StepRecord], store: Store) -> StepRecord:
    """The record all ``claims`` (worker -> record) agree on; else QuorumDisagreement."""
    groups: dict[tuple[Output, ...], list[str]] = {}
    for worker, record in sorted(claims.items()):
        groups.setdefault(record.outputs, []).append(worker)
    if len(groups) == 1:
        return claims[min(claims)]
    lines = []
    for outputs, workers in groups.items():
        digests = ", ".join(f"{o.name} sha256:{o.sha256}" for o in outputs) or "no outputs"
        lines.append(f"  {', '.join(workers)}: {digests}")
    (a, _), (b, _) = list(groups.items())[:2]
    raise QuorumDisagreement(
        f"{describe(step)} is not reproducible: its {len(claims)} runs, on {len(claims)} "
        f"workers, made different bytes; nothing was recorded\n"
        + "\n".join(lines)
        + "\n"
        + first_difference(store, a, b),
        hint="the step depends on something besides its inputs (the machine, the clock, "
        "the CPU count, ...); 'reprobuild check' varies these on one machine",
    )


def first_difference(store: Store, a: tuple[Output, ...], b: tuple[Output, ...]) -> str:
    """The first path where two runs' outputs differ, from reprobuild's tree diff."""
    theirs = {o.name: o for o in b}
    for mine in a:
        other = theirs.get(mine.name)
        if other is None:
            return f"first difference: output {mine.name!r} exists in one run only"
        if other.sha256 == mine.sha256:
            continue
        try:
            from reprobuild.diff import compare, render_text

            with store.materialized(mine.sha256) as pa, store.materialized(other.sha256) as pb:
                difference = compare(pa, pb)
        except (ReprobuildError, OSError) as exc:
            return f"first difference: output {mine.name!r} (cannot compare: {exc})"
        if difference is None:
            return f"first difference: output {mine.name!r} (same contents, other bytes)"
        path = [difference.source]
        node = difference
        while node.children:
            node = node.children[0]
            path.append(node.source)
        detail = "\n".join("    " + line for line in render_text(node).splitlines()[:8])
        return f"first difference: {mine.name}: {path[-1]}\n{detail}"
    return "first difference: the outputs' names differ"


__all__ = ["Claim", "QuorumDisagreement", "ResultRefused", "agree", "check_claim"]
