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

DEMO_OUT ?= demo-out

## The whole story in one command: yesterday at two simulated providers (acme, betsul) on
## loopback, sweeps, report mistakes, the nightly reconciliation, the files finance reads.
## Runs the migrations itself on $(DEMO_DB) (SQLite); can be run again on the same file.
demo: install
	$(TW) --db sqlite:///$(DEMO_DB) demo

## Run the whole test suite (PostgreSQL tests too when TW_TEST_POSTGRES_URL is set).
test: install
	$(BIN)/python -m pytest -n 2 -q --cov --cov-report=term

## Benchmarks (print their figures; not tests).
bench: install
	$(TW) bench ledger --clients 1,4 --seconds 10
	$(TW) bench provider acme --requests 2000
	$(TW) bench sessions --clients 1,4 --seconds 10
	$(TW) bench reconcile --rows 100000

clean:
	rm -rf $(VENV) $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm $(DEMO_DB).simulators $(DEMO_OUT)
