# Two commands for a newcomer: `make run` and `make test`. Each sets itself up first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: setup run test bench lint figures notebooks clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[test]"
	@touch $@

setup: $(STAMP)

## The main experiment on a small default: writes figures/quick/erosion.png and .json
run: setup
	$(VENV)/bin/gravity run erosion --quick

## The test suite (CPU only, strict numerics), one worker per core: XLA compiles on one core
## each, so two test files compile side by side (a file's tests share a worker and its fixtures)
test: setup
	JAX_PLATFORMS=cpu $(PY) -m pytest -n 2 --dist loadfile

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e ".[test,bench]"
	@touch $@

## Speed against the baselines: writes benchmarks/results/bench.json and prints a table
bench: $(BENCH_STAMP)
	JAX_PLATFORMS=cpu $(PY) -m benchmarks

## Every experiment at full size into figures/ (run it from a clean commit: the JSONs record it)
figures: setup
	for name in $$($(VENV)/bin/gravity list | cut -d' ' -f1); do $(VENV)/bin/gravity run $$name --no-progress || exit 1; done

## The teaching notebooks executed with their outputs, for reading: notebooks/rendered/*.ipynb
## (full size; `make notebooks NOTEBOOK_ARGS=--small` runs CI's small size in about a minute)
NOTEBOOK_ARGS ?=
notebooks: setup
	$(PY) notebooks/render.py $(NOTEBOOK_ARGS)

lint: setup
	$(VENV)/bin/ruff check gravity experiments tests
	$(VENV)/bin/ruff format --check gravity experiments tests

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
