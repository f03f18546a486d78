# Two commands do all the set-up on a fresh machine (Python 3.11+, Node 20, make):
#   make demo   the sandbox: the whole guardrail on a local AWS emulator
#   make test   lint, types and the whole test suite
# Both install exactly the locks under requirements/ (every package pinned with its hashes, no resolver);
# `make lock` rewrites the locks after a change to pyproject.toml's dependencies.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo emulator test lint typecheck unit integration infra synth bench mutate prices workflows lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The lock first, each file checked against its hash; then trainctl itself, built by the lock's setuptools.
INSTALL_LOCK = $(BIN)/pip install --quiet --require-hashes --no-deps --requirement
INSTALL_PROJECT = $(BIN)/pip install --quiet --no-deps --no-build-isolation --editable .

$(VENV)/.cli: requirements/cli.txt pyproject.toml | $(BIN)/python
	$(INSTALL_LOCK) requirements/cli.txt
	$(INSTALL_PROJECT)
	touch $@

$(VENV)/.dev: requirements/dev.txt pyproject.toml | $(BIN)/python
	$(INSTALL_LOCK) requirements/dev.txt
	$(INSTALL_PROJECT)
	touch $@ $(VENV)/.cli

# Rewrites requirements/{dev,cli,layer}.txt from pyproject.toml with uv (in the dev lock); tests/infra/test_locks.py
# fails until it has run after a change to pyproject.toml's dependencies.
lock: $(VENV)/.dev
	$(BIN)/python -m infra.lock

demo: $(VENV)/.cli
	$(BIN)/trainctl sandbox

# A local AWS emulator as the sandbox runs it (no default AMIs or snapshots, workflows that run), until Ctrl-C.
# PORT=5000 by default; SEED=1 seeds the sandbox's training fleet.
emulator: $(VENV)/.cli
	$(BIN)/trainctl emulator --port $(or $(PORT),5000) $(if $(SEED),--seed)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadfile -p no:cacheprovider

unit: $(VENV)/.dev
	$(BIN)/python -m pytest tests/unit

integration: $(VENV)/.dev
	$(BIN)/python -m pytest -n 2 --dist loadfile tests/integration

infra: $(VENV)/.dev
	$(BIN)/python -m pytest tests/infra

synth: $(VENV)/.dev
	CDK_OUTDIR=cdk.out CDK_DEFAULT_REGION=$${CDK_DEFAULT_REGION:-us-east-1} $(BIN)/python app.py

# Cloud Custodian, for the side-by-side benchmark only, in a venv of its own: it pins another boto3.
CUSTODIAN_VENV := .venv-custodian
$(CUSTODIAN_VENV)/.c7n: bench/custodian.py | $(BIN)/python
	$(PYTHON) -m venv $(CUSTODIAN_VENV)
	$(CUSTODIAN_VENV)/bin/pip install --quiet c7n==$$($(BIN)/python -c "from bench.custodian import VERSION; print(VERSION)")
	touch $@

# Every benchmark, trainctl and Cloud Custodian in the same run; rewrites bench/RESULTS.md (about an hour).
bench: $(VENV)/.dev $(CUSTODIAN_VENV)/.c7n
	$(BIN)/python -m bench.results

# Mutation testing of the safety code (not part of `make test`): mutmut breaks
# layers/trainctl/{core,sweep,handwork} one change at a time and runs the tests that reach each change, from
# the fast subset in [tool.mutmut] (tests/unit, and test_mark_life, test_mutation_survivors, test_sweep_safety,
# test_hand_commands and test_no_orphans of tests/integration). It runs in .mutmut/, a scratch copy with the
# library under src/ (mutmut names modules from ./, src/ or source/ only); bench/RESULTS.md reports the figures.
# Every mutant of the three packages takes hours here (a surviving mutant runs every test that reaches it):
# MUTANTS="glob ..." runs only those, e.g. the safety-critical functions bench/RESULTS.md names. The tests'
# AWS-call ledger knows trainctl's modules by their place under layers/: in the copy they are under src/.
MUTATE_DIR := .mutmut
mutate: $(VENV)/.dev
	rm -rf $(MUTATE_DIR) && mkdir -p $(MUTATE_DIR)/src
	cp -r layers tests events functions infra README.md pyproject.toml $(MUTATE_DIR)/
	cp -r layers/trainctl $(MUTATE_DIR)/src/trainctl
	find $(MUTATE_DIR) -name __pycache__ -prune -exec rm -rf {} +
	sed -i 's|^LAYER = ROOT / "layers"$$|LAYER = ROOT / "src"|' $(MUTATE_DIR)/tests/aws_calls.py
	cd $(MUTATE_DIR) && ../$(BIN)/mutmut run --max-children $(or $(JOBS),2) $(MUTANTS); status=$$?; \
		../$(BIN)/mutmut results --all true > results.txt; ../$(BIN)/mutmut export-cicd-stats; \
		cat mutants/mutmut-cicd-stats.json; echo; echo "each mutant's outcome: $(MUTATE_DIR)/results.txt"; exit $$status

# Rewrites the state machine definitions shipped for emulators from what the stack synthesises.
workflows: $(VENV)/.dev
	CDK_DEFAULT_ACCOUNT=123456789012 CDK_DEFAULT_REGION=us-east-1 $(BIN)/python -m infra.export_workflows

# Regenerates the shipped price file from the AWS Price List Query API (needs AWS credentials).
prices: $(VENV)/.cli
	$(BIN)/python -m trainctl.cli.price_file \
		--output layers/trainctl/cost/prices/prices.json

clean:
	rm -rf $(VENV) $(CUSTODIAN_VENV) $(MUTATE_DIR) cdk.out .cache .pytest_cache .mypy_cache .ruff_cache .hypothesis
