# The two commands: `make demo` and `make test`. Each first checks the Debian
# packages of debian-packages.txt (installing what is missing when run as root),
# then bootstraps .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-slow test-nonroot test-long test-boot golden test-golden mutate lint bench clean deps test-deps nix-conformance

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip's warnings and the build backend's banners go to a log, shown only on failure.
PIP = $(BIN)/python -m pip install -qq --disable-pip-version-check --no-input

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "setting up $(VENV) (log: $(VENV)/pip.log)"
	@$(PIP) --upgrade pip >$(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PIP) -e '.[test]' >>$(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@touch $(STAMP)

# Debian packages the product calls (deps) and the tests drive too (test-deps).
deps:
	@scripts/deps run

test-deps:
	@scripts/deps run test

DEMO_MIRROR = debian=file://$(CURDIR)/snapshots/demo/archive/debian/

demo: deps $(STAMP)
	$(BIN)/reprobuild graph recipes/demo.repro
	$(BIN)/reprobuild build --mirror $(DEMO_MIRROR) recipes/demo.repro

test: test-deps $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The slow set (long loops, live apt comparisons, slow golden recipes, the boot tests); by hand.
test-slow: test-deps $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Tests whose code paths change without root (tree extraction, the sandbox's
# user namespace, store permissions, diff without restored owners, the skip
# policy's nonroot entry), run as user nobody. Unpacking packages (tests/steps,
# every build) needs root: as another user it is refused with PrivilegeError.
NONROOT_TESTS ?= tests/sandbox tests/tree tests/store tests/diff tests/test_skip_policy.py
test-nonroot: test-deps $(STAMP)
	tests/nonroot.sh $(NONROOT_TESTS)

test-long: test-deps $(STAMP)
	$(BIN)/python -m pytest -q

# Nix's own language tests against Nix 2.8's answers (tests/lang/nix/README.md).
nix-conformance: $(STAMP)
	$(BIN)/python tests/lang/nix_conformance.py

# The VM and live recipes built twice and booted every way under QEMU (slow).
test-boot: test-deps $(STAMP)
	$(BIN)/python -m pytest -q -s tests/boot

# Golden digests: `make test-golden` checks every golden recipe (slow ones too);
# `make golden` rewrites the digests recorded in their lockfiles on purpose
# (GOLDEN="demo" for some only). Commit with the reason the bytes changed.
test-golden: test-deps $(STAMP)
	$(BIN)/python -m pytest -q tests/golden

golden: $(STAMP)
	$(BIN)/python -m tests.support.golden $(GOLDEN)

# Mutation score of the critical modules (tests/mutation/modules.toml), each
# against its fast tests, one module at a time (MODULES="versions sbom" for
# some; MUTATE_ARGS="--sample 20 --children 2" to sample); mutmut's cache is kept in build/mutate/, the report written to
# build/mutate/report.md (docs/testing.md, "Mutation score").
mutate: test-deps $(STAMP)
	nice -n 15 $(BIN)/python -m tests.support.mutate $(MUTATE_ARGS) $(MODULES)

# ruff, mypy --strict, and the architecture rules: no import cycle in reprobuild/,
# no module over 700 lines (scripts/check_architecture.py and its allowlist).
lint: $(STAMP)
	$(BIN)/ruff check reprobuild tests bench scripts/check_architecture.py
	$(BIN)/mypy
	$(BIN)/python scripts/check_architecture.py

bench: $(STAMP)
	for b in bench/[!_]*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
