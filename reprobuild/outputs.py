"""The export stage's last step: outputs from the store into ``out/``, and what a
build reports about them (the cluster workers that agreed, secrets left in a tree).

The store verifies every byte it copies out; an OCI image becomes both its
layout directory and its archive, swapped in whole so a killed build never
leaves half a layout where a previous one was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reprobuild.outstate import OutputState

__all__ = ["BuiltOutput", "agreements", "export_output", "export_outputs", "step_secrets"]


@dataclass(frozen=True)
class BuiltOutput:
    name: str
    kind: str
    sha256: str
    media_type: str
    path: Path


def agreements(
    graph: Any, key: str, agreed: Mapping[str, tuple[str, ...]]
) -> list[dict[str, Any]]:
    """The steps an output was made from that ran on the cluster, with the workers
    whose runs agreed (for its provenance statement)."""
    todo, seen = [key], set()
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(graph.steps[current].inputs)
    return [
        {
            "step": k,
            "kind": graph.steps[k].kind,
            "name": graph.steps[k].name,
            "workers": list(agreed[k]),
        }
        for k in sorted(seen)
        if k in agreed
    ]


def step_secrets(graph: Any, records: Mapping[str, Any]) -> tuple[str, ...]:
    """What the steps of this build reported as left-over per-machine secrets."""
    out = []
    for step in graph.order():
        record = records.get(step.key)
        for secret in (record.params.get("secrets") or []) if record is not None else ():
            out.append(f"{step.kind} '{step.name}': {secret}")
    return tuple(out)


def export_outputs(
    store: Any, outputs: tuple[tuple[str, str], ...], records: Any, out_dir: Path
) -> list[BuiltOutput]:
    """Export each (name, step key) output; the store verifies every copy.

    An output already in ``out_dir`` with the same bytes is left alone
    (reprobuild/outstate.py says how that is known without reading it).
    """
    from reprobuild.outstate import OutputState

    state = OutputState(out_dir)
    built = []
    try:
        for name, key in outputs:
            record = records[key]
            primary = record.outputs[0]
            dest = export_output(store, record, name, out_dir, state=state)
            built.append(BuiltOutput(name, record.kind, primary.sha256, primary.media_type, dest))
    finally:
        state.save()
    return built


def export_output(
    store: Any, record: Any, name: str, out_dir: Path, *, state: OutputState | None = None
) -> Path:
    """Write one output into ``out_dir``; returns the path shown to the user.

    Files are copied from the store (atomically); an OCI image becomes both its
    layout directory ``NAME/`` and its archive ``NAME.tar``. With ``state``,
    an output already in place is not copied again.
    """
    identity = ",".join(o.sha256 for o in record.outputs)
    oci = record.kind in ("oci_image", "image_index")
    if oci:
        dest, paths = out_dir / name, [f"{name}.tar", name]
    else:
        primary = record.outputs[0]
        suffix = primary.name[primary.name.find(".") :] if "." in primary.name else ""
        dest = out_dir / f"{name}{suffix}"
        paths = [dest.name]
    if state is not None:
        if state.current(name, record.kind, identity):
            return dest
        state.forget(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    if oci:
        _export_layout(store, record, name, out_dir)
    else:
        store.export(record.outputs[0].sha256, dest)
    if state is not None:
        state.exported(name, record.kind, identity, paths)
    return dest


def _export_layout(store: Any, record: Any, name: str, out_dir: Path) -> None:
    import shutil
    import tarfile

    from reprobuild.store._fs import no_space_named, private_dir_name, swap_dir

    archive = record.output("oci.tar")
    tar_dest = out_dir / f"{name}.tar"
    store.export(archive.sha256, tar_dest)
    layout = out_dir / name
    # A killed build's half-extracted tree is removed; the layout is swapped in whole.
    tmp = private_dir_name(out_dir, f".{name}.tmp-")
    aside = private_dir_name(out_dir, f".{name}.old-")
    try:
        with no_space_named(layout, "output"), tarfile.open(tar_dest) as t:
            from reprobuild.tarextract import extract_all

            extract_all(t, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap_dir(tmp, layout, aside)
