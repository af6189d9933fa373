# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv on demand and install the exact versions in requirements.lock.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run cluster test chromium haproxy soak check cover lint format typecheck bench-actors bench bench-quick lock clean

# The first run takes a minute or two: say what is happening and let pip show its
# progress. A venv whose creation failed half-way (no python3-venv) has a python but
# no pip, so it is made again.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/pip || { echo "Creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv --clear $(VENV); }
	@echo "Installing chatter and the $$(grep -c '==' requirements.lock) packages pinned in requirements.lock into $(VENV)"
	$(BIN)/python -m pip install --constraint requirements.lock --editable '.[dev]'
	@touch $(STAMP)
	@echo "$(VENV) is ready"

run: $(STAMP)
	$(BIN)/chatter serve

# The browser tests drive the Chromium at $(CHROMIUM), Debian's by default;
# Playwright never downloads one. Installs Debian's when it may (root or
# password-less sudo), else stops here saying what to install.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
chromium:
	@scripts/ensure-chromium "$(CHROMIUM)"

# `make cluster` and its tests run Debian's haproxy at $(HAPROXY) in front of the
# nodes. Installs it when it may (root or password-less sudo), else stops here
# saying what to install.
HAPROXY ?= /usr/sbin/haproxy
export HAPROXY
haproxy:
	@scripts/ensure-haproxy "$(HAPROXY)"

# The database, CLUSTER_NODES nodes and haproxy at 127.0.0.1:4000 (docs/CLUSTER.md).
CLUSTER_NODES ?= 3
cluster: haproxy $(STAMP)
	$(BIN)/chatter cluster --nodes $(CLUSTER_NODES) $(CLUSTER_ARGS)

test: chromium haproxy $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# Random faults (actor kills, database outages and crashes) under live traffic
# for SOAK_SECONDS, then the fault suite's checks.
SOAK_SECONDS ?= 600
soak: $(STAMP)
	CHATTER_SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest tests/faults/test_soak.py -s $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

cover: chromium haproxy $(STAMP)
	$(BIN)/pytest --cov --cov-report=term-missing $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-actors: $(STAMP)
	$(BIN)/python -m bench.actors

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

# Upgrading is a deliberate commit: `make lock` resolves the newest versions the
# pyproject ranges allow in a scratch venv and rewrites requirements.lock.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^chatter' > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info
