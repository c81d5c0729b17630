# qpu-exporter: `make run` serves the simulated fleet, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test install install-dev test-binaries bench lock clean image

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "qpu-exporter needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)

# Stamp files make re-runs instant; they depend on pyproject.toml and constraints.txt so a new
# dependency or pin reinstalls. constraints.txt holds the versions CI passed with.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(VENV)/.installed $@

# Re-resolve the newest versions pyproject.toml allows, in a scratch venv, and pin them. Run
# `make test` afterwards: commit the new constraints only if it passes.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip && .venv-lock/bin/pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-lock

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/qpu-exporter serve $(ARGS)

# Integration tests run the real Prometheus, Alertmanager, Pushgateway and PostgreSQL (Debian
# packages). As root they are installed when missing; otherwise this stops with the command to run.
TEST_PACKAGES := prometheus prometheus-alertmanager prometheus-pushgateway postgresql
PG_BINDIR := $(firstword $(wildcard /usr/lib/postgresql/*/bin))
test-binaries:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null \
	    && command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null \
	    && command -v prometheus-pushgateway >/dev/null \
	    && { command -v initdb >/dev/null || [ -x "$(PG_BINDIR)/initdb" ]; }; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages $(TEST_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_PACKAGES) >/dev/null; \
	else \
	  echo "test binaries missing; run: sudo apt-get install -y --no-install-recommends $(TEST_PACKAGES)" >&2; exit 1; \
	fi

test: install-dev test-binaries
	$(BIN)/python -m pytest $(ARGS)

# The container image, labelled with the commit it was built from (build_info's revision).
image:
	docker build --build-arg REVISION=$$(git rev-parse --short=12 HEAD) -f deploy/Dockerfile -t qpu-exporter:local .

bench: install-dev
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
