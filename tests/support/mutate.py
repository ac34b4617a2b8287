"""``make mutate``: the mutation score of the critical modules, one module at a time.

Each module of ``tests/mutation/modules.toml`` is mutated by mutmut 3 against
its own fast test files only. Why mutmut: it writes every mutant of a file
into one copy of the code behind trampolines, records once which tests call
each function, and then runs for each mutant only those tests, in a process
forked from one that has already imported everything. cosmic-ray, the
alternative, starts a fresh pytest over all of a module's tests for every
mutant, which is minutes per mutant here.

Each module gets its own working directory, ``build/mutate/NAME/``, holding a
generated ``pyproject.toml`` (the project's, plus a ``[tool.mutmut]`` section
naming the module's files and tests) and mutmut's ``mutants/`` copy of the
code with its cache: a second run retests only the functions whose text
changed, and the mutants not yet checked. ``mutants/`` links to the data the
tests read (``snapshots``, ``recipes``, ``../shared``).

Two things mutmut does not do by itself, done here:

* The tests run the real command, ``python -m reprobuild``, in subprocesses.
  ``PYTHONPATH`` names the mutated copy so that those subprocesses run the
  mutant too, and ``hooks/sitecustomize.py`` records which functions a
  subprocess called while mutmut collects its statistics, so a mutant of
  code that only a subprocess reaches is still tested (and not counted as
  "no tests").
* Equivalent mutants (``tests/mutation/equivalent.toml``): each names the
  mutant, the mutated line as it reads, and why no test can tell it apart.
  A listed mutant whose line no longer reads so is reported as stale.

Statuses: killed (a test failed), timeout (the mutant hung a test: killed),
type (``mypy --strict``, which ``make lint`` runs, rejects the mutant: killed
without running a test), survived, no tests (no fast test calls the
function: a survivor too), equivalent. The score is killed / (mutants -
equivalent), over the mutants checked so far.

``python -m tests.support.mutate [--report-only] [MODULE ...]``; the report
goes to ``build/mutate/report.md`` and ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES_FILE = ROOT / "tests" / "mutation" / "modules.toml"
EQUIVALENT_FILE = ROOT / "tests" / "mutation" / "equivalent.toml"
WORK = ROOT / "build" / "mutate"
# What the tests read beside the code, linked into each mutants/ copy.
DATA_LINKS = ("snapshots", "recipes", "scripts", "docs", "debian-packages.txt", "README.md")

# mutmut's exit-code vocabulary -> ours.
STATUS = {
    1: "killed",
    3: "killed",
    0: "survived",
    5: "no tests",
    33: "no tests",
    34: "skipped",
    36: "timeout",
    37: "type",
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    255: "timeout",
    None: "not checked",
}
KILLED = {"killed", "timeout", "type"}

SITECUSTOMIZE = '''\
"""Written by tests/support/mutate.py: while mutmut collects which tests call
which functions, a subprocess records the functions it called into HITS_DIR,
for the parent to add to the test that ran it."""
import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("MUTATE_HITS_DIR"):
    import atexit
    import uuid

    import mutmut.mutation.trampoline as _trampoline

    _hits = set()

    def _record(name, caller=None):
        _hits.add(name)

    def _dump():
        if not _hits:
            return
        path = os.path.join(os.environ["MUTATE_HITS_DIR"], uuid.uuid4().hex)
        try:
            with open(path + ".tmp", "w") as f:
                f.write("\\n".join(sorted(_hits)))
            os.rename(path + ".tmp", path)
        except OSError:
            pass

    _trampoline.record_trampoline_hit = _record
    atexit.register(_dump)
'''


@dataclass(frozen=True)
class Module:
    """One critical module: the files mutated and the fast tests run against them."""

    name: str
    mutate: tuple[str, ...]
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Equivalent:
    """A mutant no test can tell from the original, and why."""

    mutant: str
    line: str
    reason: str


@dataclass
class Score:
    """The counts of one module."""

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def mutants(self) -> int:
        return sum(self.counts.values())

    @property
    def killed(self) -> int:
        return sum(self.counts.get(s, 0) for s in KILLED)

    @property
    def checked(self) -> int:
        return self.mutants - self.counts.get("not checked", 0) - self.counts.get("skipped", 0)

    @property
    def scored(self) -> int:
        """Checked mutants that are not equivalent: the denominator."""
        return self.checked - self.counts.get("equivalent", 0)

    def percent(self) -> float | None:
        return 100.0 * self.killed / self.scored if self.scored else None

    def tests_percent(self) -> float | None:
        """The score without the mutants mypy rejects: what the tests alone kill."""
        typed = self.counts.get("type", 0)
        denominator = self.scored - typed
        return 100.0 * (self.killed - typed) / denominator if denominator else None


def load_modules() -> list[Module]:
    data = tomllib.loads(MODULES_FILE.read_text())
    return [Module(name, tuple(v["mutate"]), tuple(v["tests"])) for name, v in data.items()]


def load_equivalents() -> dict[str, Equivalent]:
    if not EQUIVALENT_FILE.exists():
        return {}
    data = tomllib.loads(EQUIVALENT_FILE.read_text())
    return {
        e["mutant"]: Equivalent(e["mutant"], e["line"], e["reason"]) for e in data.get("mutant", [])
    }


def _toml_list(items: tuple[str, ...] | list[str]) -> str:
    return json.dumps(list(items))


def prepare(module: Module) -> Path:
    """The module's working directory, with its config, hooks and data links."""
    work = WORK / module.name
    (work / "mutants").mkdir(parents=True, exist_ok=True)
    (work / "hits").mkdir(exist_ok=True)
    (work / "hooks").mkdir(exist_ok=True)
    (work / "hooks" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    for name in ("reprobuild", "tests"):
        _link(work / name, ROOT / name)
    mypy_targets = list(module.mutate)
    config = f"""

[tool.mutmut]
source_paths = ["reprobuild"]
only_mutate = {_toml_list(module.mutate)}
pytest_add_cli_args_test_selection = {_toml_list(module.tests)}
pytest_add_cli_args = ["-m", "not slow", "-p", "tests.support.mutate_hits", "-p", "no:cacheprovider"]
type_check_command = {_toml_list(["mypy", "--output", "json", "--no-warn-unused-ignores", *mypy_targets])}
use_git_change_detection = false
on_dependency_change = "ignore"
"""
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + config)
    _sync_unmutated(module, work / "mutants")
    for name in DATA_LINKS:
        _link(work / "mutants" / name, ROOT / name)
    _link(work / "shared", ROOT.parent / "shared")
    return work


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    link.symlink_to(target)


def _sync_unmutated(module: Module, mutants: Path) -> None:
    """Copy every file of the package that is not mutated, as it is now.

    mutmut copies a file once and then regenerates only the mutated ones, so
    after a merge the rest of its copy would be stale."""
    mutated = set(module.mutate)
    src = ROOT / "reprobuild"
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(ROOT)
        dest = mutants / rel
        if "__pycache__" in rel.parts or str(rel) in mutated:
            continue
        if path.is_symlink():
            _link(dest, Path(os.readlink(path)))
        elif path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif not dest.exists() or dest.read_bytes() != path.read_bytes():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


def run(module: Module, *, sample: int = 100, children: int = 1) -> int:
    """Test the module's unchecked mutants (of the sample), then its earlier survivors."""
    work = prepare(module)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(work / "hooks"), str(work / "mutants")])
    env["MUTATE_HITS_DIR"] = str(work / "hits")
    # mutmut knows mypy's JSON output by the command's name, "mypy", found on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    print(f"== {module.name}: {', '.join(module.mutate)}", flush=True)
    command = [sys.executable, "-m", "tests.support.mutmut_run", "run"]
    command += ["--max-children", str(children)]
    before = statuses(module)
    # mutmut keeps a verdict until the function changes; tests added since a
    # mutant survived must get their chance, so earlier survivors run again.
    earlier = [n for n, s in before.items() if s in ("survived", "no tests") and sampled(n, sample)]
    if not before:
        names = [] if sample >= 100 else [sample_glob(sample)]
    else:
        todo = [n for n, s in before.items() if s == "not checked" and sampled(n, sample)]
        names = [*todo, *earlier]
        if not names:
            return 0
    return subprocess.run([*command, *names], cwd=work, env=env).returncode


# --sample P tests the mutants whose number ends in one of the first P/10
# digits of this order: the same ones on every run, spread over every function.
_SAMPLE_DIGITS = "0516273849"


def sampled(name: str, sample: int) -> bool:
    return sample >= 100 or name[-1] in _SAMPLE_DIGITS[: sample // 10]


def sample_glob(sample: int) -> str:
    return f"*__mutmut_*[{_SAMPLE_DIGITS[: sample // 10]}]"


def statuses(module: Module) -> dict[str, str]:
    """Every mutant of the module with its status, from mutmut's cache (``FILE.meta``)."""
    out: dict[str, str] = {}
    for rel in module.mutate:
        meta = WORK / module.name / "mutants" / (rel + ".meta")
        if meta.exists():
            codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
            out.update((name, STATUS.get(code, "survived")) for name, code in codes.items())
    return out


def score(module: Module, equivalents: dict[str, Equivalent]) -> Score:
    """Count the module's mutants, equivalent ones apart."""
    result = Score(module.name)
    work = WORK / module.name
    for name, status in statuses(module).items():
        if status in ("survived", "no tests") and name in equivalents:
            if _mutated_line_is(work, name, equivalents[name].line):
                status = "equivalent"
                result.equivalent.append(name)
            else:
                result.stale.append(name)
        if status in ("survived", "no tests"):
            result.survivors.append(f"{name} ({status})")
        result.counts[status] = result.counts.get(status, 0) + 1
    return result


def mutant_diff(work: Path, name: str) -> str:
    shown = subprocess.run(
        [str(Path(sys.executable).with_name("mutmut")), "show", name],
        cwd=work,
        capture_output=True,
        text=True,
    )
    return shown.stdout


def _mutated_line_is(work: Path, name: str, line: str) -> bool:
    """Whether the mutant still changes a line to ``line`` (else the entry is stale)."""
    added = [
        ln[1:].strip()
        for ln in mutant_diff(work, name).splitlines()
        if ln.startswith("+") and not ln.startswith("+++")
    ]
    return _normalise(line) in [_normalise(a) for a in added]


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


COLUMNS = ("killed", "timeout", "type", "survived", "no tests", "equivalent", "not checked")


def report(scores: list[Score]) -> str:
    lines = [
        "| module | mutants | " + " | ".join(COLUMNS) + " | score | tests alone |",
        "|---" * (len(COLUMNS) + 4) + "|",
    ]
    total = Score("**all**")
    for s in scores:
        for k, v in s.counts.items():
            total.counts[k] = total.counts.get(k, 0) + v
    for s in [*scores, total]:
        pct = s.percent()
        cells = [str(s.counts.get(c, 0)) for c in COLUMNS]
        shown = "—" if pct is None else f"{pct:.1f}% ({s.killed}/{s.scored})"
        alone = s.tests_percent()
        shown += " | —" if alone is None else f" | {alone:.1f}%"
        lines.append(f"| {s.name} | {s.mutants} | " + " | ".join(cells) + f" | {shown} |")
    for s in scores:
        if s.survivors or s.stale:
            lines.append("")
            lines.append(f"### {s.name}: survivors")
            lines.extend(f"- `{x}`" for x in s.survivors)
            lines.extend(f"- `{x}` (stale equivalence entry: recheck)" for x in s.stale)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="module names (default: all)")
    parser.add_argument("--report-only", action="store_true", help="count the cache, run nothing")
    parser.add_argument(
        "--sample",
        type=int,
        default=100,
        choices=range(10, 101, 10),
        metavar="PERCENT",
        help="test only this share of each module's mutants (said in the report)",
    )
    parser.add_argument("--children", type=int, default=1, help="mutants tested in parallel")
    args = parser.parse_args(argv)
    modules = load_modules()
    unknown = set(args.modules) - {m.name for m in modules}
    if unknown:
        parser.error(f"unknown module(s) {', '.join(sorted(unknown))}; see {MODULES_FILE}")
    chosen = [m for m in modules if not args.modules or m.name in args.modules]
    failed = []
    if not args.report_only:
        for m in chosen:
            if run(m, sample=args.sample, children=args.children) != 0:
                failed.append(m.name)
    equivalents = load_equivalents()
    scores = [score(m, equivalents) for m in modules if (WORK / m.name / "mutants").exists()]
    text = report(scores)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "report.md").write_text(text)
    (WORK / "report.json").write_text(
        json.dumps(
            {
                s.name: {
                    "mutants": s.mutants,
                    **s.counts,
                    "score": s.percent(),
                    "score_tests_alone": s.tests_percent(),
                    "survivors": s.survivors,
                    "stale_equivalents": s.stale,
                }
                for s in scores
            },
            indent=2,
            sort_keys=True,
        )
    )
    print(text)
    if failed:
        print(f"mutmut failed for: {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
