# Quickstart: `make demo` (embedded DuckDB + Prefect's temporary API) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Closed network here and in many CI runners: keep telemetry off everywhere.
export SODA_CORE_TELEMETRY_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_HOME ?= $(CURDIR)/.prefect

.PHONY: install demo test test-fast lint validate bench lock clean

install: $(STAMP)

$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/python -m demo

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .

validate: install
	$(BIN)/shipshape validate

bench: install
	$(BIN)/python bench/bench.py

# Re-pin after changing pyproject.toml dependencies (uv resolves; pip installs from the locks).
# requirements.lock is what the image ships; requirements-dev.lock adds the test tools.
lock: install
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml -o requirements.lock --python-version 3.11 --native-tls
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements-dev.lock --python-version 3.11 --native-tls

clean:
	rm -rf data .prefect
