# Doorbuster: the two commands a newcomer needs are `make up` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up reset test test-unit test-integration lint lock migrate audit faults flower rabbitmq-plugins prometheus postfix chromium clean-venv bench surge

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,ops,load]'
	@touch $(STAMP)

## install what is missing, migrate, start everything in the foreground (Ctrl-C stops it all);
## POOLS="payments=3" fixes the workers per pool, AUTOSCALE=1 lets ops/autoscale.py run them
up: $(STAMP) rabbitmq-plugins
	$(BIN)/python -m devtools.up

## empty the local stack's data, schema kept: the three databases, the Stripe emulator's state,
## the SMTP sink's Maildir, the queues (refuses in production, off this machine, or while `make up` runs)
reset: $(STAMP)
	$(BIN)/python -m devtools.reset

## install what is missing and run the whole suite against real RabbitMQ and PostgreSQL
test: $(STAMP) rabbitmq-plugins prometheus postfix chromium
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -rfEs -s

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

test-integration: $(STAMP) rabbitmq-plugins postfix chromium
	$(BIN)/python -m pytest -q tests/integration tests/e2e

## every fault scenario (kill -9 pools, broker and database restarts, Stripe and SMTP outages)
faults: $(STAMP)
	DOORBUSTER_FAULTS=full $(BIN)/python -m pytest -q -s tests/faults

## the contract's invariants and the campaign promise; SINCE=2026-12-02T20:00:00Z checks only
## what was created (or dead-lettered) since then
audit: $(STAMP)
	$(BIN)/python -m ops.audit $(if $(SINCE),--since '$(SINCE)')

## the Black-Friday load test against a running stack (`make up`); report in var/surge/<run>/
## e.g. make surge USERS=50 DURATION=120 PROFILE=step SPAWN_RATE=5 UI=1 ORDERS_URL=http://...
SURGE_FLAGS = $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION)) \
	$(if $(SPAWN_RATE),--spawn-rate $(SPAWN_RATE)) $(if $(PROFILE),--profile '$(PROFILE)') \
	$(if $(filter 1 yes true,$(UI)),--ui) \
	$(if $(ORDERS_URL),--orders-url $(ORDERS_URL)) \
	$(if $(INVENTORY_URL),--inventory-url $(INVENTORY_URL)) \
	$(if $(NOTIFICATIONS_URL),--notifications-url $(NOTIFICATIONS_URL)) \
	$(if $(STRIPE_LATENCY_MS),--stripe-latency-ms $(STRIPE_LATENCY_MS))
surge: $(STAMP) rabbitmq-plugins
	$(BIN)/python -m bench.surge $(SURGE_FLAGS) $(SURGE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

migrate: $(STAMP)
	$(BIN)/python -m shared.infra.migrate

## regenerate constraints.txt (the lock) from pyproject.toml in a throw-away venv
lock:
	rm -rf /tmp/doorbuster-lock && $(PYTHON) -m venv /tmp/doorbuster-lock
	/tmp/doorbuster-lock/bin/pip install -q '.[dev,ops,load]'
	/tmp/doorbuster-lock/bin/pip freeze --exclude doorbuster > constraints.txt

## the side-by-side benchmarks, written to docs/benchmarks.md (intake, bulk mail, priority
## isolation, payments pool, end to end: about 35 minutes)
bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y -qq wrk || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.intake
	$(BIN)/python -m bench.bulk_mail
	$(BIN)/python -m bench.isolation
	$(BIN)/python -m bench.payments_pool
	$(BIN)/python -m bench.stripe_sdk
	$(BIN)/python -m bench.e2e

## Flower on 127.0.0.1 against the running pools (basic auth: FLOWER_BASIC_AUTH=user:password,
## else one generated and printed), with the broker tab from the management API
flower: $(STAMP)
	$(BIN)/python -m ops.flower --port=$${FLOWER_PORT:-5555}

## the ops CLI and KEDA's http mode read the RabbitMQ management API; Prometheus reads every
## queue's depth, consumers and oldest message from its Prometheus plugin on :15692
## (Debian's RabbitMQ starts with both off; enabling them needs root, no restart)
rabbitmq-plugins:
	@rabbitmq-plugins enable --quiet rabbitmq_management rabbitmq_prometheus >/dev/null 2>&1 \
	  || echo "note: could not enable rabbitmq_management and rabbitmq_prometheus; tests that need them skip"

## Debian's Prometheus and promtool for the dashboard test and `promtool check config`; the
## package's own service stays off (the tests run the binary on their own port and storage)
prometheus:
	@command -v prometheus >/dev/null || apt-get install -y -qq prometheus \
	  || (apt-get update -qq && apt-get install -y -qq prometheus) \
	  || echo "note: could not install prometheus; the dashboard tests will skip"
	@command -v systemctl >/dev/null && systemctl disable --now prometheus >/dev/null 2>&1 || true

## Debian's Postfix for the real-MTA test (tests/integration/test_postfix_relay.py), installed
## with "No configuration" (no main.cf) and its own service kept off: the test runs a private
## instance (devtools/postfix_relay.py) on its own loopback port and folders under var/
postfix:
	@test -x /usr/sbin/postfix || { \
	  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix); } \
	  || echo "note: could not install postfix; the Postfix relay test will skip"
	@command -v systemctl >/dev/null && systemctl disable --now postfix >/dev/null 2>&1 || true

## Debian's headless Chromium for the browser test of /docs and /redoc (tests/e2e/test_docs_offline.py)
chromium:
	@command -v chromium >/dev/null || apt-get install -y -qq chromium \
	  || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || echo "note: could not install chromium; the browser test of /docs and /redoc will skip"

clean-venv:
	rm -rf $(VENV)
