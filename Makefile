# Two commands for a newcomer: `make up` (start the platform) and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install up test lint contracts spectral bench clean

install: $(VENV)/.installed

# The venv is built from the committed lock; uv is bootstrapped into it with pip
# when the machine has no uv of its own.
$(VENV)/.installed: pyproject.toml uv.lock
	@test -x $(BIN)/python || python3 -m venv $(VENV)
	@if command -v uv >/dev/null 2>&1; then UV=uv; else \
		test -x $(BIN)/uv || $(BIN)/pip install --quiet uv; UV=$(BIN)/uv; fi; \
		UV_PROJECT_ENVIRONMENT=$(VENV) $$UV sync --frozen --inexact --quiet
	@touch $@

up: install
	$(BIN)/tally up

# Every test, on every core (pytest-xdist; a test file stays on one worker, so its
# fixtures start once). Each worker starts its own servers on free ports. Files are
# handed out in collection order, the longest first (tests/conftest.py), so that none
# of them runs alone at the end.
test: install
	$(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder --durations=30

# The quick loop, a few minutes: leaves out the whole platform as processes (e2e), tests
# that start services as processes or a stack of them (slow; both marked in
# tests/conftest.py) and those needing PostgreSQL or Redis. `make test` runs everything.
.PHONY: test-fast
test-fast: install
	$(BIN)/pytest -m "not e2e and not slow and not postgres and not redis"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/tally contracts check
	$(MAKE) spectral

contracts: install
	$(BIN)/tally contracts export

# Spectral (npm, pinned in package-lock.json) lints the OpenAPI contracts with the house
# ruleset .spectral.yaml. Node is needed only for this target; npm ci runs when
# node_modules is missing or older than the lock.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

spectral: node_modules/.package-lock.json
	npx --no-install spectral lint "contracts/openapi/*/*.json" --ruleset .spectral.yaml --fail-severity error

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache node_modules
