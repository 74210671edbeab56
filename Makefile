# Two commands on a fresh clone (see README): `make run` and `make test`.
# Everything installs into .venv from requirements.lock; only Python 3.11 and git are assumed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: make it the project's.
export PATH := $(BIN):$(PATH)

.PHONY: install run test test-slow test-reliability reliability-report lint format params lock ui server server-deps bench clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU wheel; a range would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install rnnlab with pinned dependencies

run: $(STAMP)  ## the main job: the DVC pipeline on the embedded CO2 dataset
	dvc repro

test: $(STAMP)  ## the default (fast) test suite
	python -m pytest

test-slow: $(STAMP) server-deps  ## the slow end-to-end tests (some start a PostgreSQL server)
	python -m pytest -m slow

test-reliability: $(STAMP)  ## bad inputs, kill -9 and resume, signals, concurrent starts, model server (all also in test-slow)
	python -m pytest -m reliability

reliability-report: $(STAMP)  ## re-run the bad-input matrix and rewrite its table in docs/reliability.md
	RNNLAB_RELIABILITY_REPORT=docs/reliability.md python -m pytest -m reliability tests/test_reliability.py

lint: $(STAMP)
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

format: $(STAMP)
	ruff check --fix src tests benchmarks
	ruff format src tests benchmarks

params: $(STAMP)  ## regenerate params.yaml from conf/ (what `dvc exp run` does)
	python -m rnnlab.config > params.yaml

lock: $(STAMP)  ## refresh requirements.lock from the current environment
	{ echo "# Exact versions of every dependency, used as pip constraints by \`make\` (regenerate: make lock)."; \
	  python -m pip freeze --exclude-editable | grep -v '^rnnlab'; } > requirements.lock

ui: $(STAMP)  ## browse runs at http://127.0.0.1:5000
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000

server: $(STAMP) server-deps  ## team tracking server: PostgreSQL + MLflow at http://127.0.0.1:5000
	python -m rnnlab.server --dir $(CURDIR)/.team-server --port 5000 --pg-port 5433

# PostgreSQL's server programs from Debian (apt needs root; elsewhere install PostgreSQL and put
# pg_ctl on PATH).
server-deps:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

BENCH ?=
bench: $(STAMP)  ## the backbone benchmarks, one process each (`make bench BENCH=--quick`: smoke run)
	python benchmarks/training_speed.py $(BENCH)
	python benchmarks/pipeline.py $(BENCH)
	python benchmarks/sweeps.py --part parallel $(BENCH)

clean:
	rm -rf $(VENV) outputs multirun
