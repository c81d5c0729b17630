# qpu-exporter: `make run` serves the simulated fleet, `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test install install-dev prometheus-binaries bench clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "qpu-exporter needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)

# Stamp files make re-runs instant; they depend on pyproject.toml so a new dependency reinstalls.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/qpu-exporter serve $(ARGS)

# Integration tests need the real Prometheus and Alertmanager (Debian packages).
prometheus-binaries:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null \
	    && command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages prometheus and prometheus-alertmanager"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null; \
	else \
	  echo "Prometheus binaries missing; run: sudo apt-get install -y --no-install-recommends prometheus prometheus-alertmanager" >&2; exit 1; \
	fi

test: install-dev prometheus-binaries
	$(BIN)/python -m pytest $(ARGS)

bench: install-dev
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
