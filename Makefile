# Two commands matter: `make train` runs the main job, `make test` runs the suite.
# Each builds .venv from the committed uv.lock first; only Python 3.11, pip and make are needed.
# `make test-fast` is the inner loop: lint, types and the tests that need no server.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

export UV_PYTHON_DOWNLOADS := never
export DAGSTER_HOME ?= $(CURDIR)/.dagster

# The browser test drives the Dagster UI in Debian's Chromium; the production-mode tests start
# throwaway PostgreSQL clusters with Debian's server programs; the README's production steps
# use jq. `make system-packages` installs them; `make test` checks for them.
CHROMIUM ?= /usr/bin/chromium
POSTGRES_INITDB = $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))
SYSTEM_PACKAGES = $(if $(wildcard $(CHROMIUM)),,chromium) $(if $(POSTGRES_INITDB),,postgresql) \
  $(if $(shell command -v jq),,jq)
# pytest-xdist workers. Most tests wait on a server or a subprocess, so two keep both cores
# of a small machine busy; each test file stays on one worker, with its module fixtures.
TEST_WORKERS ?= 2
# --no-loadscope-reorder: xdist would otherwise hand out the files with the most tests first,
# and the suite's own order (the longest files first, penguins_platform_tests/tiers.py) would
# leave the few-test rehearsal files for the end, with one worker idle.
PYTEST = PENGUINS_CHROMIUM=$(CHROMIUM) $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile \
  --no-loadscope-reorder
FAST_TESTS = not integration and not e2e

.PHONY: setup setup-dev train promote rollback serve sample traffic monitor stop dev mlflow-ui test test-fast \
	ruff lint format bench rehearse clean system-packages check-system-packages check-postgres

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet uv==$(UV_VERSION)

# --compile-bytecode: this environment sets PYTHONDONTWRITEBYTECODE, so without it every
# process recompiles dagster, mlflow and keras, roughly doubling import time. The main job's
# commands install the platform alone (--inexact keeps test tools already there); the test
# commands add the test tools (the `dev` group: pytest, moto, Playwright, linters).
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	@echo "Setting up $(VENV) from uv.lock: the platform's packages, compiled once (about a" \
	  "minute on a first run; nothing after that)."
	$(UV) sync --frozen --no-dev --inexact --compile-bytecode --python $(PYTHON)
	touch $@

$(VENV)/.synced-dev: uv.lock pyproject.toml | $(UV)
	@echo "Setting up $(VENV) from uv.lock with the test tools (about a minute on a first run)."
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@ $(VENV)/.synced

setup: $(VENV)/.synced

setup-dev: $(VENV)/.synced-dev

train: setup  ## materialize the training lineage; extra flags via ARGS="--threshold 0.9"
	$(BIN)/python -m penguins_platform train $(ARGS)

serve: setup  ## serve the champion on http://127.0.0.1:8080 (a background service)
	$(BIN)/python -m penguins_platform serve $(ARGS)

sample: setup  ## send the reference's sample penguin to the endpoint
	$(BIN)/python -m penguins_platform sample

traffic: setup  ## send sampled penguins to the endpoint; ARGS="--drift" drifts their body mass
	$(BIN)/python -m penguins_platform traffic $(ARGS)

promote: setup  ## make VERSION the champion by hand: make promote VERSION=3 REASON="why"
	@if [ -z "$(VERSION)" ] || [ -z "$(REASON)" ]; then \
	  echo 'usage: make promote VERSION=n REASON="why" (make rollback REASON="why" for the previous champion)' >&2; \
	  exit 2; fi
	$(BIN)/python -m penguins_platform promote "$(VERSION)" --reason "$(REASON)" $(ARGS)

rollback: setup  ## the champion that the current one replaced serves again: make rollback REASON="why"
	@if [ -z "$(REASON)" ]; then echo 'usage: make rollback REASON="why"' >&2; exit 2; fi
	$(BIN)/python -m penguins_platform promote --previous --reason "$(REASON)" $(ARGS)

monitor: setup  ## evaluate the captured traffic: labels, drift, accuracy, an HTML report
	$(BIN)/python -m penguins_platform monitor $(ARGS)

stop: setup  ## stop the endpoint
	$(BIN)/python -m penguins_platform stop

dev: setup  ## the Dagster UI on the same instance, http://127.0.0.1:3000
	$(BIN)/python -m penguins_platform dev

mlflow-ui: setup  ## the MLflow UI on the same store, http://127.0.0.1:5000
	$(BIN)/python -m penguins_platform mlflow-ui

# Installs the Debian packages the whole suite needs, in one apt-get, as root or through sudo.
system-packages:
	@missing="$(strip $(SYSTEM_PACKAGES))"; [ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	echo "installing Debian's $$missing (the browser, Postgres and production-steps tests)"; \
	$$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null

check-system-packages:
	@missing="$(strip $(SYSTEM_PACKAGES))"; [ -z "$$missing" ] && exit 0; \
	echo "make test needs Debian's $$missing (the browser, Postgres and production-steps tests): run" \
	  "'make system-packages' (it uses sudo unless you are root), or 'make test-fast'" \
	  "for the tests that need neither" >&2; exit 1

check-postgres:
	@[ -n "$(POSTGRES_INITDB)" ] || { echo "make rehearse runs the stacks' databases on" \
	  "Debian's PostgreSQL: run 'make system-packages' (it uses sudo unless you are root)" >&2; \
	  exit 1; }

ruff: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lint: ruff  ## ruff and the type checker (mypy), on the package, the tests and the benches
	$(BIN)/mypy

# Runs the tests $(1) while mypy checks the types beside them, then prints mypy's report; fails
# if either fails. A cold mypy keeps one core busy for about 35 s, and the tests wait on
# servers and subprocesses much of the time, so together they end about 20 s sooner.
TYPES_LOG := .cache/mypy.log
define tests-while-typing
	@mkdir -p .cache; echo "$(BIN)/mypy > $(TYPES_LOG) (beside the tests)"; \
	$(BIN)/mypy > $(TYPES_LOG) 2>&1 & types=$$!; \
	echo '$(1)'; $(1); tests=$$?; wait $$types; typed=$$?; cat $(TYPES_LOG); \
	[ $$tests = 0 ] && [ $$typed = 0 ]
endef

test-fast: ruff  ## lint, types and the tests that need no server: the inner loop, under 90 s
	$(call tests-while-typing,$(PYTEST) -m "$(FAST_TESTS)")

test: check-system-packages ruff  ## lint, types, then the whole suite (CI runs exactly this)
	$(call tests-while-typing,$(PYTEST) --durations=15)

format: setup-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

rehearse: setup-dev check-postgres  ## start the ECS deployment here from infra/ (moto, PostgreSQL) and run one cycle
	$(BIN)/python -m penguins_platform rehearse $(ARGS)

bench: setup-dev  ## print the speed ratios of bench/
	$(BIN)/python bench/load.py
	$(BIN)/python bench/main_job.py
	$(BIN)/python bench/promotion.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/sensor.py
	$(BIN)/python bench/production.py
	$(BIN)/python bench/rehearse.py
	$(BIN)/python bench/monitoring.py
	$(BIN)/python bench/capture_store.py
	$(BIN)/python bench/clean_clone.py

clean:
	rm -rf $(VENV) .uv .dagster .mlflow .cache .serving .monitoring
