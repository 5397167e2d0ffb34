# transfer-wallet: `make demo` and `make test` are all a fresh clone needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TW := $(BIN)/tw
DEMO_DB ?= transfer_wallet.db
export TW_PROVIDERS_FILE ?= sample_data/providers.toml

.PHONY: demo test install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## Run the main job on an embedded SQLite file (./transfer_wallet.db), ending with a clean ledger check.
demo: install
	TW_DATABASE_URL=sqlite:///$(DEMO_DB) $(BIN)/python -m jobs.demo

## Run the whole test suite (PostgreSQL tests too when TW_TEST_POSTGRES_URL is set).
test: install
	$(BIN)/python -m pytest -n 2 -q

## Benchmarks (print their figures; not tests).
bench: install
	$(TW) bench ledger --clients 1,4 --seconds 10

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
