"""Build progress for people: a rich display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from reprobuild.buildgraph import BuildStep
from reprobuild.execute import Progress


@contextmanager
def make_progress(*, quiet: bool = False) -> Iterator[Progress]:
    progress = Progress()
    if quiet:
        yield progress
        return
    if not sys.stderr.isatty():

        def plain(event: str, step: BuildStep) -> None:
            if event in ("start", "cached"):
                word = "run   " if event == "start" else "cached"
                print(f"{word} {step.kind:<10} {step.name}", file=sys.stderr, flush=True)

        def plain_phase(step: BuildStep, text: str) -> None:
            print(f"       {step.kind:<10} {step.name}: {text}", file=sys.stderr, flush=True)

        progress.on_event = plain
        progress.on_phase = plain_phase
        yield progress
        return
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    started = time.monotonic()
    with RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fetched]}"),
        TextColumn("{task.fields[current]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task("steps", total=None, current="", fetched="")
        running: dict[str, str] = {}

        def refresh() -> None:
            rate = progress.fetched / max(time.monotonic() - started, 0.001)
            fetched = (
                f"{_mb(progress.fetched)} fetched ({_mb(rate)}/s)" if progress.fetched else ""
            )
            bar.update(
                task,
                total=progress.total,
                completed=progress.cached + progress.run,
                current=", ".join(f"{k} {n}" for n, k in sorted(running.items())[:3]),
                fetched=fetched,
            )

        def show(event: str, step: BuildStep) -> None:
            if event == "start":
                running[step.name] = step.kind
            elif event == "done":
                running.pop(step.name, None)
            refresh()

        def phase(step: BuildStep, text: str) -> None:
            if step.name in running:
                running[step.name] = f"{step.kind} ({text})"
            refresh()

        def fetched_bytes(n: int) -> None:
            progress.add_bytes(n)
            refresh()

        progress.on_event = show
        progress.on_phase = phase
        progress.on_bytes = fetched_bytes
        yield progress


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"
