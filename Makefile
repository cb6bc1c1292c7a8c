# Roost: `make demo` runs the demo, `make test` runs every test suite. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: demo test check lint bench deps clean

# The environment the other targets use: Roost installed editable with pinned dependencies.
$(VENV): $(STAMP)
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "Cannot create $(VENV): install Python's venv module (Debian: apt-get install python3-venv)"; exit 1; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[cloud,ble,zigbee,dev]'
	@touch $@

# Debian packages the tests use (libcoap's client; RabbitMQ, whose own node the RabbitMQ test starts and stops),
# installed when run as root.
deps:
	@if ! command -v coap-client-notls >/dev/null 2>&1 && ! command -v coap-client >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq --no-install-recommends libcoap3-bin >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends libcoap3-bin >/dev/null)) \
	    && echo "installed libcoap3-bin (coap-client-notls)"; \
	  else echo "note: libcoap3-bin is not installed and this is not root: the libcoap client tests will be skipped"; fi; \
	fi
	@# RabbitMQ: the package's own service must not start (nor stay running): a temporary policy-rc.d denies
	@# service starts during the install, systemd (where there is one) gets it disabled, and a node that runs anyway is stopped.
	@if ! ls /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    own_policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; \
	      chmod 755 /usr/sbin/policy-rc.d; own_policy=1; fi; \
	    (apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null)) \
	    && echo "installed rabbitmq-server (its service is not started)"; \
	    if [ -n "$$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
	      systemctl disable --now rabbitmq-server >/dev/null 2>&1 || true; fi; \
	    if ps -eo args | grep -q '[b]eam.*-sname rabbit@'; then \
	      rabbitmqctl stop >/dev/null 2>&1 && echo "stopped the rabbitmq-server package's own node"; fi; \
	  else echo "note: rabbitmq-server is not installed and this is not root: the RabbitMQ node test will be skipped"; fi; \
	fi

demo: $(STAMP)
	$(BIN)/roost demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every suite, the slow end-to-end ones too. pytest exits 5 when no test ran: that fails here too.
test: deps $(STAMP) lint
	$(BIN)/pytest -q $(PYTEST_FLAGS)

# The fast suites, for the inner loop (under 5 minutes).
check: $(STAMP) lint
	$(BIN)/pytest -q -m "not slow" $(PYTEST_FLAGS)

bench: $(STAMP)
	$(BIN)/python bench/uplink.py
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/serial.py
	$(BIN)/python bench/pollers.py
	$(BIN)/python bench/ble.py
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/zigbee.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
