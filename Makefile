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
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup pipeline test bench serve clean-outputs

help:
	@echo "make pipeline  set up .venv if missing, then dvc repro the whole DAG"
	@echo "make test      set up .venv if missing, then run the test suite"
	@echo "make bench     run the side-by-side benchmarks into metrics/bench/"

# Every install is held by constraints.txt so pip never swaps in a CUDA torch on a CPU machine.
$(STAMP): requirements-mlops.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-mlops.txt -r requirements-dev.txt -c constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)
	@bash tools/setup_system.sh
	@bash tools/setup_repo.sh

pipeline: setup
	AISTUDIO_PIPELINE_ID=$${AISTUDIO_PIPELINE_ID:-repro-$$(date -u +%Y%m%dT%H%M%SZ)} dvc repro

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench

clean-outputs:
	rm -rf data/processed models/* metrics/bench logs mlflow.db mlruns .dvc/tmp/rwlock
