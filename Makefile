# stepout: the two first commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test test-unit lint format bench asyncapi clean ops-tools check-deploy

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "stepout needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

## The whole system on an embedded default: a local nats-server (started if none answers) and SQLite.
run: install
	$(BIN)/stepout run all

## Unit, integration and end-to-end tests against a real nats-server started by the test session.
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## Speed, measured against a raw NATS consumer on the same machine (writes bench/results.json).
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## The AsyncAPI document, generated from the contract models.
asyncapi: install
	$(BIN)/python -m stepout_contract.asyncapi > docs/asyncapi.json

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## prometheus, promtool and docker-compose from Debian's packages, when missing (needs root).
ops-tools:
	bash deploy/scripts/install-ops-tools.sh

## The deployment files without a container engine: compose, Prometheus config, alerts and their tests, dashboards.
check-deploy:
	bash deploy/scripts/check-deploy.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
