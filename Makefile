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

.PHONY: install demo test test-fast lint validate diff generate bench chaos lock clean

# The dev lock by default; deploy jobs set INSTALL_LOCK=requirements.lock so that only what the image ships sits next
# to production credentials. Every file is checked against the lock's sha256 (--require-hashes). The project itself,
# an editable install from this tree, has no hash to check: it is a separate --no-deps step.
INSTALL_LOCK ?= requirements-dev.lock

install: $(STAMP)

$(STAMP): $(INSTALL_LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(INSTALL_LOCK)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/python -m demo

# Static checks first (seconds): style, the layer contracts in pyproject.toml, strict types of the product code.
# Then two workers; tests that share one machine-wide resource stay on one (tests/conftest.py, SHARING_THE_MACHINE).
test: lint
	$(BIN)/pytest -n 2 --durations=20

test-fast: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

validate: install
	$(BIN)/shipshape validate

# What the branch changes in the published tables, against BASE (default: the merge base with main); exit 1 on an
# unversioned breaking change. CI runs it on pull requests.
diff: install
	$(BIN)/shipshape diff $(if $(BASE),--base $(BASE))

# prefect.yaml, CODEOWNERS and the runbook skeletons, from pipelines/*.yaml (tests fail when they are stale).
generate: install
	$(BIN)/python -m deployments.generate

# Full size by default (1M rows, 3 repeats, a few minutes); e.g. BENCH_ARGS="--rows 20000 --repeat 1" for a quick run.
BENCH_ARGS ?=
bench: install
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

# UI backfills (14 and 90 days) on `make up`'s platform vs one `shipshape run` of the same range, and a one-day run
# cold and warm (a private PostgreSQL server; ~10 min). Quick: BENCH_OPS_ARGS="--short-days 2 --long-days 3".
BENCH_OPS_ARGS ?=
.PHONY: bench-ops
bench-ops: install
	$(BIN)/python bench/ops.py $(BENCH_OPS_ARGS)

# SIGKILLs and PostgreSQL crashes at random moments of a 1M-row run, each followed by a re-run that must publish
# what a clean run does (a private PostgreSQL server; 7-15 min). Quick: CHAOS_ARGS="--rows 20000 --kills 3 --restarts 1".
CHAOS_ARGS ?=
chaos: install
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

# Environments (deployments/environments.py): ENV=dev|staging|prod. Values come from the environment
# (see README "Environments"); PREFECT_API_URL names the environment's Prefect API.
ENV ?= dev
.PHONY: plan apply deploy up down
plan: install
	$(BIN)/python -m infra plan --env $(ENV)

apply: install
	$(BIN)/python -m infra apply --env $(ENV)

# Registers every deployment of ENV; IMAGE is the promoted image (a digest in CI). No Docker engine needed.
deploy: install
	DEPLOY_ENV=$(ENV) SHIPSHAPE_IMAGE=$(IMAGE) $(BIN)/prefect --no-prompt deploy --all

# The dev platform on this machine, without Docker: Prefect server + UI on 127.0.0.1:4200, a process worker.
up: install
	$(BIN)/python -m infra.local.platform up

down:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m infra.local.platform down; fi

# Re-pin after changing pyproject.toml dependencies (uv resolves; pip installs from the locks).
# requirements.lock is what the image ships; requirements-dev.lock adds the test tools. Every pin carries the
# sha256 of each file PyPI serves for it, and every install checks them (--require-hashes): a file swapped on
# the index or a proxy fails the install. uv keeps the versions already in an existing lock unless told to upgrade.
LOCK_FLAGS := --python-version 3.11 --native-tls --generate-hashes
lock: install
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml -o requirements.lock $(LOCK_FLAGS)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench -o requirements-dev.lock $(LOCK_FLAGS)

clean: down
	rm -rf data .prefect .platform

# The production image (Dockerfile). CI: `make image image-check`; override IMAGE, DOCKER (e.g. /usr/bin/docker)
# and BUILD_NETWORK (host here, where only the host reaches the package proxy; `default` for a sandboxed builder).
# BASE_IMAGE (CI: a digest, python:3.11-slim@sha256:...) replaces the Dockerfile's default base when set.
GIT_SHA = $(shell git rev-parse HEAD)
GIT_SHA_SHORT = $(shell git rev-parse --short=12 HEAD)
PROJECT_VERSION = $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n 1)
IMAGE ?= shipshape:$(GIT_SHA_SHORT)
DOCKER ?= docker
BUILD_NETWORK ?= host
BASE_IMAGE ?=
# A tag can be moved to other bytes between two builds: a BASE_IMAGE given here must name its digest. The digest
# itself is not checked against a registry (none is reachable offline); left unset, the Dockerfile's default (a
# local stand-in in tests) is used. Read from the environment, so no value is ever spliced into a shell command.
export BASE_IMAGE

.PHONY: image image-check
image:
	@[[ -z "$$BASE_IMAGE" || "$$BASE_IMAGE" =~ ^[a-z0-9./_:-]+@sha256:[0-9a-f]{64}$$ ]] || { \
		echo "BASE_IMAGE=$$BASE_IMAGE is not pinned by digest: use <image>@sha256:<64 hex>, e.g." \
			"python:3.11-slim@sha256:<digest> from \`docker buildx imagetools inspect python:3.11-slim\`" >&2; exit 1; }
	$(DOCKER) build --network $(BUILD_NETWORK) \
		--build-arg VERSION=$(PROJECT_VERSION) --build-arg GIT_SHA=$(GIT_SHA) \
		$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
		--tag $(IMAGE) .

# Smoke test: the image's own copy of the declarations validates with the image's own code.
image-check:
	$(DOCKER) run --rm --network host $(IMAGE) shipshape validate
