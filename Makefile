# Doorbuster: the two commands a newcomer needs are `make up` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test test-unit test-integration lint lock migrate audit faults flower surge clean-venv

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
	$(BIN)/python -m pytest -q -rs -s

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration tests/e2e

## every fault scenario (kill -9 pools, broker and database restarts, Stripe and SMTP outages)
faults: $(STAMP)
	DOORBUSTER_FAULTS=full $(BIN)/python -m pytest -q -s tests/faults

audit: $(STAMP)
	$(BIN)/python -m ops.audit

## the Black-Friday load test against a running stack (`make up`); report in var/surge/<run>/
## e.g. make surge USERS=50 DURATION=120 PROFILE=step SPAWN_RATE=5 UI=1 ORDERS_URL=http://...
SURGE_FLAGS = $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION)) \
	$(if $(SPAWN_RATE),--spawn-rate $(SPAWN_RATE)) $(if $(PROFILE),--profile '$(PROFILE)') \
	$(if $(filter 1 yes true,$(UI)),--ui) \
	$(if $(ORDERS_URL),--orders-url $(ORDERS_URL)) \
	$(if $(INVENTORY_URL),--inventory-url $(INVENTORY_URL)) \
	$(if $(NOTIFICATIONS_URL),--notifications-url $(NOTIFICATIONS_URL)) \
	$(if $(STRIPE_LATENCY_MS),--stripe-latency-ms $(STRIPE_LATENCY_MS))
surge: $(STAMP)
	$(BIN)/python -m bench.surge $(SURGE_FLAGS) $(SURGE_ARGS)

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

flower: $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt flower
	$(BIN)/celery -A workers.app:flower_app flower --port=5555

clean-venv:
	rm -rf $(VENV)
