"""Provenance: in-toto Statements with a SLSA provenance v1 predicate.

One statement per output: the subject is the output's digest; the build
definition names the recipe and lockfile by sha256 and lists every resolved
dependency (signed snapshot indexes and packages) by sha256. Nothing in it
depends on the machine or the clock, so two organizations that replay the
same lockfile produce byte-identical statements and can simply compare them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reprobuild import __version__
from reprobuild.archives import for_snapshot
from reprobuild.canonical import canonical_json
from reprobuild.errors import CheckFailed, UsageError
from reprobuild.fetch import sha256_file
from reprobuild.lockfile import Lockfile

STATEMENT = "https://in-toto.io/Statement/v1"
SLSA = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://reprobuild.invalid/buildtypes/recipe/v1"


def statement(
    lock: Lockfile, lock_sha256: str, recipe_name: str, output: str, digest: str, epoch: int
) -> dict[str, Any]:
    deps: list[dict[str, Any]] = []
    for snap in lock.snapshots:
        for suite in snap.suites:
            uri = for_snapshot(snap).index_uri(snap, suite.suite)
            deps.append({"uri": uri, "digest": {"sha256": suite.inrelease_sha256}})
    snaps = {s.name: s for s in lock.snapshots}
    for pkg in sorted(lock.packages):
        deps.append(
            {
                "name": f"{pkg.name}={pkg.version}:{pkg.architecture}",
                "uri": snaps[pkg.snapshot].url + pkg.filename,
                "digest": {"sha256": pkg.sha256},
            }
        )
    return {
        "_type": STATEMENT,
        "subject": [{"name": output, "digest": {"sha256": digest}}],
        "predicateType": SLSA,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "recipe": {"name": recipe_name, "sha256": lock.recipe},
                    "lockfile": {"sha256": lock_sha256},
                    "output": output,
                },
                "internalParameters": {"sourceDateEpoch": epoch, "reprobuild": __version__},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": f"https://reprobuild.invalid/reprobuild@{__version__}"}
            },
        },
    }


QUORUM = "https://reprobuild.invalid/byproducts/quorum/v1"


def add_quorum(statement: dict[str, Any], quorum: int, steps: list[dict[str, Any]]) -> None:
    """Name the workers whose runs of each step agreed (``build --quorum N``).

    A byproduct of the run, in ``runDetails``: the build definition, and so
    what two organizations compare, stays the same with or without a quorum.
    """
    details = statement["predicate"]["runDetails"]
    details.setdefault("byproducts", []).append(
        {
            "name": "quorum",
            "uri": QUORUM,
            "annotations": {"required": quorum, "steps": steps},
        }
    )


def dumps(data: dict[str, Any]) -> str:
    return canonical_json(data, document=True)


def artifact_digest(path: Path) -> str:
    """A file's sha256, or an OCI layout's manifest digest (what registries serve)."""
    if path.is_dir():
        index = path / "index.json"
        if not index.exists():
            raise UsageError(f"{path} is a directory but not an OCI image layout")
        manifests = json.loads(index.read_text())["manifests"]
        return str(manifests[0]["digest"]).removeprefix("sha256:")
    return sha256_file(path)[0]


def verify(attestation: Path, artifact: Path, lockfile: Path | None = None) -> dict[str, Any]:
    """Check that an attestation names this artifact (and lockfile); raise CheckFailed if not."""
    try:
        data = json.loads(attestation.read_text())
        subjects = {s["digest"]["sha256"] for s in data["subject"]}
        params = data["predicate"]["buildDefinition"]["externalParameters"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{attestation}: not a reprobuild provenance statement ({exc})") from None
    if data.get("_type") != STATEMENT or data.get("predicateType") != SLSA:
        raise UsageError(f"{attestation}: not an in-toto statement with SLSA provenance v1")
    digest = artifact_digest(artifact)
    if digest not in subjects:
        raise CheckFailed(
            f"{artifact} (sha256 {digest}) is not the subject of {attestation} "
            f"(which names {', '.join(sorted(subjects))})"
        )
    if lockfile is not None:
        from reprobuild import lockfile as lf

        have = lf.load(lockfile).identity()
        if params["lockfile"]["sha256"] != have:
            raise CheckFailed(
                f"{attestation} was made from a lockfile with sha256 "
                f"{params['lockfile']['sha256']}, not {lockfile} ({have})"
            )
    return {"subject": digest, "recipe": params["recipe"], "lockfile": params["lockfile"]}
