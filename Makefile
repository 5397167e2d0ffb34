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

DEMO_FAULTS ?= transfer:500=0.2,transfer:429=0.1:0,transfer:lost=0.05

## A seeded day of sessions against a local provider simulator with faults, on an
## embedded SQLite file (./transfer_wallet.db), ending with a clean ledger check.
demo: install
	$(TW) --db sqlite:///$(DEMO_DB) db upgrade
	$(TW) --db sqlite:///$(DEMO_DB) simulate --provider acme --players 8 --sessions 60 --seed 7 \
		--faults $(DEMO_FAULTS) --report-out demo-acme-transfers.csv
	$(TW) --db sqlite:///$(DEMO_DB) session list --limit 5
	$(TW) --db sqlite:///$(DEMO_DB) ledger check

## Run the whole test suite (PostgreSQL tests too when TW_TEST_POSTGRES_URL is set).
test: install
	$(BIN)/python -m pytest -n 2 -q --cov --cov-report=term

## Benchmarks (print their figures; not tests).
bench: install
	$(TW) bench ledger --clients 1,4 --seconds 10
	$(TW) bench provider acme --requests 2000
	$(TW) bench sessions --clients 1,4 --seconds 10

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm demo-acme-transfers.csv
