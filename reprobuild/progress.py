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

        progress.on_event = plain
        yield progress
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[current]}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task("steps", total=None, current="")
        running: set[str] = set()

        def show(event: str, step: BuildStep) -> None:
            if event == "start":
                running.add(step.name)
            elif event == "done":
                running.discard(step.name)
            bar.update(
                task,
                total=progress.total,
                completed=progress.cached + progress.run,
                current=", ".join(sorted(running)[:3]),
            )

        progress.on_event = show
        yield progress
