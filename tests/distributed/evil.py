"""Dask worker plugins that lie: what a hostile worker could send back.

Each rewrites the result a worker keeps for a reprobuild task just after it
is computed, before the coordinator fetches it (``WorkerPlugin.transition``
to ``memory``), as a worker under another party's control could.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin


class _Liar(WorkerPlugin):
    def setup(self, worker: Any) -> None:
        self.worker = worker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish == "memory" and str(key).startswith("reprobuild-"):
            self.worker.data[key] = self.lie(self.worker.data[key])

    def lie(self, value: Any) -> Any:
        raise NotImplementedError


class Garbage(_Liar):
    """Replaces every result with a string."""

    name = "garbage"

    def lie(self, value: Any) -> Any:
        return "garbage"


class Forger(_Liar):
    """Changes the digests a result claims: to content nobody has (``absent``), or
    to the outputs of the first step it ran, which the store has (``present``)."""

    name = "forger"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.first: Any = None

    def lie(self, value: Any) -> Any:
        from reprobuild.store import Output

        if not hasattr(value, "record"):
            return value
        if self.mode == "present" and self.first is None:
            self.first = value.record.outputs  # the first result goes through untouched
            return value
        if self.mode == "present":
            outputs = self.first
        else:
            outputs = tuple(Output(o.name, "0" * 64, o.size, o.media_type) for o in value.record.outputs)
        record = dataclasses.replace(value.record, outputs=outputs)
        stored = dataclasses.replace(value.stored, outputs=outputs)
        return dataclasses.replace(value, record=record, stored=stored)
