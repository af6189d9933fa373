# Two commands on a fresh machine: `make run` and `make test`.
# Both create .venv on demand and install the exact versions in requirements.lock.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test soak check cover lint format typecheck bench-actors bench bench-quick lock clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint requirements.lock --editable '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/chatter serve

test: $(STAMP)
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

cover: $(STAMP)
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
