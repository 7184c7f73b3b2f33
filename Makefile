# Doorbuster: the two commands a newcomer needs are `make up` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test test-unit test-integration lint lock migrate audit flower clean-venv bench

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

## install what is missing, migrate, start everything in the foreground (Ctrl-C stops it all)
up: $(STAMP)
	$(BIN)/python -m deploy.local.up

## install what is missing and run the whole suite against real RabbitMQ and PostgreSQL
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -rs

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

migrate: $(STAMP)
	$(BIN)/python -m shared.migrate

## regenerate constraints.txt (the lock) from pyproject.toml in a throw-away venv
lock:
	rm -rf /tmp/doorbuster-lock && $(PYTHON) -m venv /tmp/doorbuster-lock
	/tmp/doorbuster-lock/bin/pip install -q '.[dev]'
	/tmp/doorbuster-lock/bin/pip freeze --exclude doorbuster > constraints.txt

## the side-by-side benchmarks, written to docs/benchmarks.md (about 2 minutes each)
bench: $(STAMP)
	$(BIN)/python -m bench.bulk_mail

flower: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt flower
	$(BIN)/celery -A workers.app:flower_app flower --port=5555

clean-venv:
	rm -rf $(VENV)
