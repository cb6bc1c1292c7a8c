# Roost: `make demo` runs the demo, `make test` runs every test suite. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: demo test check lint bench deps clean image firmware firmware-avr firmware-sim firmware-coap-node console

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
	@# libcoap's headers for building firmware/coap-node (the CoAP node's tests build it).
	@if ! pkg-config --exists libcoap-3-notls 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq --no-install-recommends libcoap3-dev pkgconf >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends libcoap3-dev pkgconf >/dev/null)) \
	    && echo "installed libcoap3-dev (to build the CoAP node)"; \
	  else echo "note: libcoap3-dev is not installed and this is not root: the CoAP node's tests will be skipped"; fi; \
	fi
	@# systemd-analyze for the unit file tests (verify, security); installing the package starts nothing here.
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends systemd >/dev/null)) \
	    && echo "installed systemd (systemd-analyze)"; \
	  else echo "note: systemd-analyze is not installed and this is not root: the unit file tests will be skipped"; fi; \
	fi
	@# Chromium for the local page's browser test (Playwright drives Debian's chromium; no playwright install).
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null)) \
	    && echo "installed chromium"; \
	  else echo "note: chromium is not installed and this is not root: the local page's browser test will be skipped"; fi; \
	fi
	@# Node.js and npm to build the cloud console (console/: npm ci from its lockfile, then esbuild).
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null)) \
	    && echo "installed nodejs npm (to build the console)"; \
	  else echo "note: npm is not installed and this is not root: the console is not built and its browser tests are skipped"; fi; \
	fi
	@# firmware (issue 12): AVR toolchain and simulator (avr-gcc, avr-libc, libsimavr for firmware/sim, avrdude, optiboot's source)
	@if ! command -v avr-gcc >/dev/null 2>&1 || ! command -v avrdude >/dev/null 2>&1 || \
	    [ ! -e /usr/include/simavr/sim_avr.h ] || [ ! -e /usr/include/libelf.h ] || \
	    [ ! -d /usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    pkgs="gcc-avr avr-libc simavr libsimavr-dev libelf-dev avrdude arduino-core-avr"; \
	    (apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null)) \
	    && echo "installed $$pkgs"; \
	  else echo "note: the AVR toolchain or simavr is not installed and this is not root: the firmware tests will be skipped"; fi; \
	fi
	@# The image (issue 9): mmdebstrap, the file system tools, and qemu for the boot test (qemu-user-static for arm64).
	@if ! command -v mmdebstrap >/dev/null 2>&1 || ! command -v mcopy >/dev/null 2>&1 || \
	    ! command -v mkfs.vfat >/dev/null 2>&1 || ! command -v sfdisk >/dev/null 2>&1 || \
	    ! command -v qemu-system-x86_64 >/dev/null 2>&1 || ! command -v qemu-aarch64-static >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    pkgs="mmdebstrap dosfstools mtools fdisk e2fsprogs xz-utils qemu-system-x86 qemu-utils qemu-user-static binfmt-support arch-test"; \
	    (apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null)) \
	    && echo "installed $$pkgs"; \
	  else echo "note: mmdebstrap, mtools or qemu is not installed and this is not root: the image build and boot tests will be skipped"; fi; \
	fi
	@# Data at scale (issue 11): PostgreSQL 15 and haproxy; tests start their own server and proxy, so the
	@# packages' services are kept from starting (policy-rc.d) and disabled where systemd runs.
	@if [ ! -x /usr/lib/postgresql/15/bin/pg_ctl ] || ! command -v haproxy >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    pkgs="postgresql-15 postgresql-client-15 haproxy"; \
	    own_policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; \
	      chmod 755 /usr/sbin/policy-rc.d; own_policy=1; fi; \
	    (apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null 2>&1 || \
	     (apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null)) \
	    && echo "installed $$pkgs (their services are not started)"; \
	    if [ -n "$$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
	      systemctl disable --now postgresql haproxy >/dev/null 2>&1 || true; fi; \
	  else echo "note: PostgreSQL 15 or haproxy is not installed and this is not root: the PostgreSQL and scale-out tests will be skipped"; fi; \
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

demo: $(STAMP) console
	$(BIN)/roost demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Every suite, the slow end-to-end ones too. pytest exits 5 when no test ran: that fails here too.
test: deps $(STAMP) lint firmware console
	$(BIN)/pytest -q $(PYTEST_FLAGS)
	$(BIN)/python -m gateway.systemd_units score systemd/roost-gateway.service

# The firmware builds (issue 12), each printing its size: the AVR node (flash and RAM, then its protocol code
# built natively against the shared vectors in tests/vectors/roostserial), the simavr bridge with optiboot,
# and the CoAP node. A part whose toolchain is missing (not root) is skipped with a note; its tests skip too.
firmware: firmware-avr firmware-sim firmware-coap-node

firmware-avr:
	@if command -v avr-gcc >/dev/null 2>&1; then $(MAKE) --no-print-directory -C firmware/avr; \
	else echo "note: avr-gcc is not installed and this is not root: firmware/avr is not built (make deps installs it)"; fi
	$(MAKE) --no-print-directory -C firmware/avr host-test

firmware-sim:
	@if [ -e /usr/include/simavr/sim_avr.h ] && command -v avr-gcc >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory -C firmware/sim; \
	else echo "note: simavr or avr-gcc is not installed: firmware/sim is not built (make deps installs them)"; fi

firmware-coap-node:
	@if pkg-config --exists libcoap-3-notls 2>/dev/null; then $(MAKE) --no-print-directory -C firmware/coap-node; \
	else echo "note: libcoap3-dev is not installed: firmware/coap-node is not built (make deps installs it)"; fi

# The fast suites, for the inner loop (under 5 minutes).
check: $(STAMP) lint console
	$(BIN)/pytest -q -m "not slow" $(PYTEST_FLAGS)

# The cloud console (console/): its npm packages as the lockfile pins them, bundled by esbuild into
# cloud/console_dist (git-ignored), which the cloud serves at /console/. The build prints the first load's size.
CONSOLE_SRC := $(wildcard console/src/*.js console/src/*/*.js console/src/*.css) console/build.mjs
console: cloud/console_dist/manifest.json
cloud/console_dist/manifest.json: console/node_modules/.package-lock.json $(CONSOLE_SRC)
	@if command -v node >/dev/null 2>&1; then cd console && node build.mjs; \
	else echo "note: Node.js is not installed: the console is not built (make deps installs it, as root)"; fi
console/node_modules/.package-lock.json: console/package.json console/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd console && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "note: npm is not installed: the console's packages are not installed (make deps installs it, as root)"; fi

# The SD-card image (root: mmdebstrap, chroot): make image ARCH=amd64 for a PC/VM image. Output in dist/image.
ARCH ?= arm64
image: deps $(STAMP)
	$(BIN)/roost image build --arch $(ARCH) --out dist/image

bench: $(STAMP)
	$(BIN)/python bench/uplink.py
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/policy.py
	$(BIN)/python bench/serial.py
	$(BIN)/python bench/pollers.py
	$(BIN)/python bench/ble.py
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/cloud_rules.py
	$(BIN)/python bench/zigbee.py
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/localpage.py
	$(BIN)/python bench/coap_node.py
	$(BIN)/python bench/console.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/ingest_rollups.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/ingest_workers.py
	$(BIN)/python bench/fleet.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
