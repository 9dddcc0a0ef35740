# stepout: the two first commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every Python package pinned, with the hashes of its files (`make lock` writes them from pyproject.toml):
# the build tools ([build-system] requires), the runtime dependencies (the image) and runtime + dev (make install, CI).
LOCK_BUILD   := requirements/build.txt
LOCK_RUNTIME := requirements/runtime.txt
LOCK_DEV     := requirements/dev.txt

.PHONY: install lock run cluster simulate test test-unit lint format bench asyncapi rules-doc clean ops-tools browser check-deploy advisories security-table client client-docs

## Only locked packages, each file checked against its hash: the build tools first, then the dev lock
## (a package without a wheel, like nkeys, is built by the locked setuptools, not by one fetched for the build),
## then stepout itself, editable and without dependencies.
install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK_BUILD) $(LOCK_DEV)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "stepout needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK_BUILD)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps --no-build-isolation -r $(LOCK_DEV)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# pyproject.toml for `make lock`. `build-requires`: [build-system] requires, one a line. `header KIND LOCK`:
# heads the lock with the SHA-256 of the pyproject.toml lists it is made from (parsed, sorted), which
# tests/integration/test_supply_chain.py computes again from pyproject.toml and fails when they differ.
define LOCK_PYPROJECT
import hashlib, json, sys, tomllib
from pathlib import Path
from packaging.requirements import Requirement

pyproject = tomllib.loads(Path("pyproject.toml").read_text())
lists = {
    "build-system.requires": pyproject["build-system"]["requires"],
    "project.dependencies": pyproject["project"]["dependencies"],
    "project.optional-dependencies.dev": pyproject["project"]["optional-dependencies"]["dev"],
}
if sys.argv[1] == "build-requires":
    print(*lists["build-system.requires"], sep="\n")
    sys.exit()
kind, lock = sys.argv[2], Path(sys.argv[3])
made_from = {
    "build": ["build-system.requires"],
    "runtime": ["project.dependencies"],
    "dev": ["project.dependencies", "project.optional-dependencies.dev"],
}[kind]
normalised = {key: sorted(str(Requirement(item)) for item in lists[key]) for key in made_from}
digest = hashlib.sha256(json.dumps(normalised, sort_keys=True).encode()).hexdigest()
header = [
    f"# {lock}: every package pinned, with the hashes of its files, for Python 3.11 on any platform.",
    "# Written by `make lock` (uv pip compile --universal --generate-hashes); do not edit by hand.",
    f"# Made from pyproject.toml's {' + '.join(made_from)}, whose SHA-256 (parsed, sorted) is:",
    f"# pyproject-sha256: {digest}",
]
lock.write_text("\n".join(header) + "\n" + lock.read_text())
endef
export LOCK_PYPROJECT

UV_COMPILE = $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --no-header \
	$(if $(UPGRADE),--upgrade)

## Relocks requirements/*.txt after a change of pyproject.toml's dependencies, keeping every pin it can
## (`make lock UPGRADE=1`: the newest versions pyproject.toml allows). The dev lock keeps the runtime lock's
## pins, so the tests run what the image runs. Commit the lock files with pyproject.toml.
lock: install
	$(BIN)/python -c "$$LOCK_PYPROJECT" build-requires | $(UV_COMPILE) - --output-file $(LOCK_BUILD)
	$(UV_COMPILE) pyproject.toml --constraint $(LOCK_BUILD) --output-file $(LOCK_RUNTIME)
	$(UV_COMPILE) pyproject.toml --extra dev --constraint $(LOCK_BUILD) --constraint $(LOCK_RUNTIME) \
		--output-file $(LOCK_DEV)
	$(BIN)/python -c "$$LOCK_PYPROJECT" header build $(LOCK_BUILD)
	$(BIN)/python -c "$$LOCK_PYPROJECT" header runtime $(LOCK_RUNTIME)
	$(BIN)/python -c "$$LOCK_PYPROJECT" header dev $(LOCK_DEV)

## The whole system on an embedded default: a local nats-server (started if none answers) and SQLite.
run: install
	$(BIN)/stepout run all

## A 3-node JetStream cluster on loopback (ports 4241-4243, stores under var/cluster); it prints the settings
## that point the services at it: `export STEPOUT_NATS_URL=... STEPOUT_STREAM_REPLICAS=3`.
cluster: install
	$(BIN)/stepout cluster --nodes 3

## A synthetic cohort driven through the system `make run` runs: `make simulate ARGS="--participants 30 --days 7"`.
simulate: install
	$(BIN)/python -m stepout_simulate $(ARGS)

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

## The domain model and every rule with its thresholds, generated from the shipped rule sets.
rules-doc: install
	$(BIN)/python -m stepout_domain.rules_doc > docs/RULES.md

## README.md's "Security" table of each NATS identity's rights, generated from deploy/nats/nats-server.conf.
security-table: install
	$(BIN)/python -m stepout_security_table

## The platform's client as wheels in dist/ (`make client CLIENT_DIST=DIR`: in DIR): stepout-contract (the contract's
## models) and stepout-client, each built by the locked setuptools from a staged copy of its package under shared/,
## with the pyproject.toml beside it at the top (the README's "Integrating" says how to install them).
CLIENT_DIST ?= dist
client: install
	@mkdir -p $(CLIENT_DIST)
	@stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && for package in stepout_contract stepout_client; do \
		mkdir -p "$$stage/$$package" && cp shared/$$package/pyproject.toml "$$stage/$$package/" && \
		cp -R shared/$$package "$$stage/$$package/$$package" && rm "$$stage/$$package/$$package/pyproject.toml" && \
		find "$$stage/$$package" -name __pycache__ -prune -exec rm -rf {} + && \
		$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir $(CLIENT_DIST) "$$stage/$$package" \
		|| exit 1; \
	done
	@ls $(CLIENT_DIST)/stepout_contract-*.whl $(CLIENT_DIST)/stepout_client-*.whl

## stepout-client's API reference, generated by pdoc from the docstrings, into dist/client-docs/ (open index.html).
client-docs: install
	$(BIN)/pdoc --docformat markdown --output-directory dist/client-docs stepout_client stepout_client.over_http

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services tools
	$(BIN)/mypy --strict shared/stepout_client examples
	$(BIN)/python -m stepout_advisories check

## The advisories PyPI lists for every version pinned in requirements/*.txt, into requirements/advisories.json
## (needs PyPI): after `make lock`, and now and then. `make lint` checks the locks against it with the network closed,
## and asks PyPI again when it answers; requirements/advisories.ignore lets an advisory pass, with a reason.
advisories: install
	$(BIN)/python -m stepout_advisories refresh

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## prometheus, promtool and docker-compose from Debian's packages, when missing (needs root).
ops-tools:
	bash deploy/scripts/install-ops-tools.sh

## chromium and chromium-driver from Debian's packages, when missing (needs root), for the console's browser tests.
browser:
	bash deploy/scripts/install-browser.sh

## The deployment files without a container engine: compose, Prometheus config, alerts and their tests, dashboards.
check-deploy:
	bash deploy/scripts/check-deploy.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
