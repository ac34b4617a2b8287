# The two commands: `make demo` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-slow test-long golden test-golden lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

DEMO_MIRROR = debian=file://$(CURDIR)/snapshots/demo/archive/debian/

demo: $(STAMP)
	$(BIN)/reprobuild graph recipes/demo.repro
	$(BIN)/reprobuild build --mirror $(DEMO_MIRROR) recipes/demo.repro

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# The slow set (long loops, live apt comparisons, slow golden recipes); CI runs it after `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-long: $(STAMP)
	$(BIN)/python -m pytest -q

# Golden digests: `make test-golden` checks every golden recipe (slow ones too);
# `make golden` rewrites the digests recorded in their lockfiles on purpose
# (GOLDEN="demo" for some only). Commit with the reason the bytes changed.
test-golden: $(STAMP)
	$(BIN)/python -m pytest -q tests/golden

golden: $(STAMP)
	$(BIN)/python -m tests.support.golden $(GOLDEN)

lint: $(STAMP)
	$(BIN)/ruff check reprobuild tests bench
	$(BIN)/mypy

bench: $(STAMP)
	for b in bench/[!_]*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
