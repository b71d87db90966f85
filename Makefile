# Two commands matter: `make train` runs the main job, `make test` runs the suite.
# Each builds .venv from the committed uv.lock first; only Python 3.11, pip and make are needed.

PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .uv/bin/uv
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

export UV_PYTHON_DOWNLOADS := never
export DAGSTER_HOME ?= $(CURDIR)/.dagster

# The browser test drives the Dagster UI in Debian's Chromium; the production-mode tests start
# throwaway PostgreSQL clusters with Debian's server programs.
CHROMIUM ?= /usr/bin/chromium
# pytest-xdist workers. Most tests wait on a server or a subprocess, so two keep both cores
# of a small machine busy; each test file stays on one worker, with its module fixtures.
TEST_WORKERS ?= 2
POSTGRES_INITDB := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))

.PHONY: setup train serve sample traffic monitor stop dev mlflow-ui test lint format bench clean \
	system-packages

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet uv==$(UV_VERSION)

# --compile-bytecode: this environment sets PYTHONDONTWRITEBYTECODE, so without it every
# process recompiles dagster, mlflow and keras, roughly doubling import time.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

setup: $(VENV)/.synced

train: setup  ## materialize the training lineage; extra flags via ARGS="--threshold 0.9"
	$(BIN)/python -m penguins_platform train $(ARGS)

serve: setup  ## serve the champion on http://127.0.0.1:8080 (a background service)
	$(BIN)/python -m penguins_platform serve $(ARGS)

sample: setup  ## send the reference's sample penguin to the endpoint
	$(BIN)/python -m penguins_platform sample

traffic: setup  ## send sampled penguins to the endpoint; ARGS="--drift" drifts their body mass
	$(BIN)/python -m penguins_platform traffic $(ARGS)

monitor: setup  ## evaluate the captured traffic: labels, drift, accuracy, an HTML report
	$(BIN)/python -m penguins_platform monitor $(ARGS)

stop: setup  ## stop the endpoint
	$(BIN)/python -m penguins_platform stop

dev: setup  ## the Dagster UI on the same instance, http://127.0.0.1:3000
	$(BIN)/python -m penguins_platform dev

mlflow-ui: setup  ## the MLflow UI on the local store, http://127.0.0.1:5000
	$(BIN)/python -m penguins_platform mlflow-ui

# Installs what the tests need from Debian when it is missing, in one apt-get: as root, else
# through passwordless sudo; otherwise it says the command to run.
system-packages:
	@missing="$(if $(wildcard $(CHROMIUM)),,chromium) $(if $(POSTGRES_INITDB),,postgresql)"; \
	missing=$$(echo $$missing); [ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "make test needs Debian's $$missing (the browser and Postgres tests):" \
	  "run 'sudo apt-get install -y $$missing'" >&2; exit 1; fi; \
	echo "installing Debian's $$missing for the tests"; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null

test: setup system-packages  ## lint, then the whole suite (installs Chromium and PostgreSQL when missing)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PENGUINS_CHROMIUM=$(CHROMIUM) $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup  ## print the speed ratios of bench/
	$(BIN)/python bench/load.py
	$(BIN)/python bench/main_job.py
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/sensor.py
	$(BIN)/python bench/production.py
	$(BIN)/python bench/monitoring.py
	$(BIN)/python bench/capture_store.py

clean:
	rm -rf $(VENV) .uv .dagster .mlflow .cache .serving .monitoring
