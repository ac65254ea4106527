# The two commands of the README are `make run` and `make test`; everything else is a step of those.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .tools/uv/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@$(PYTHON) -m venv .tools/uv
	@.tools/uv/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

deps: $(VENV)/.synced ## Python dependencies into .venv (locked by uv.lock)

influxd: ## obtain influxd 2.x (built once from its Go module, then cached in ~/.cache/gridts)
	@$(PYTHON) scripts/influxdb-local build

tools: ## helm, kustomize, chromium, iptables: what the chart, page and cluster-script tests need
	@bash scripts/install-tools
	@bash scripts/install-browser
	@bash scripts/install-test-packages

setup: deps influxd tools ## everything the tests and the local run need

lint: deps ## ruff (lint and format) and mypy --strict on src/ and tests/
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy

test: setup lint ## the whole test suite (README's test command; .ci/run runs it)
	PATH="$$HOME/.cache/gridts/bin:$$PATH" $(VENV)/bin/pytest

e2e: setup ## the platform on a real one-node Kubernetes built here (scripts/cluster; see adr/0011)
	@# Up first, outside pytest, so that a first run's build progress is visible.
	$(PYTHON) scripts/cluster up
	PATH="$$HOME/.cache/gridts/bin:$$PATH" GRIDTS_E2E=1 $(VENV)/bin/pytest tests/e2e \
	  --maxfail=1 --timeout=3600 -p no:cacheprovider

cluster-down: ## stop the e2e cluster and remove everything it put on the machine
	@$(PYTHON) scripts/cluster down

chart-docs: ## regenerate charts/gridts/README.md from values.yaml and README.md.gotmpl (helm-docs)
	@bash scripts/install-tools
	@bash scripts/chart-docs
.PHONY: chart-docs

run: deps influxd ## run the platform locally: InfluxDB up, sample ingested, API on :8000
	@bash scripts/run-local

stop: ## stop the local InfluxDB
	@$(PYTHON) scripts/influxdb-local stop

bench: setup ## benchmarks (ratios, measured side by side; about 25 minutes)
	bash bench/setup-peers
	$(PY) bench/ingest.py
	$(PY) bench/api.py

results: setup ## run every benchmark and the load test, then write docs/results.md and its plots
	bash bench/setup-peers
	$(PY) bench/ingest.py
	$(PY) bench/api.py --days-1s 365
	-$(PY) bench/load.py
	$(PY) bench/wide.py
	$(PY) bench/capacity.py --days 14 --series 2
	$(PY) bench/report.py

load: setup ## load test: API replicas, 64 clients for 60 s while an ingest writes; fails on any 5xx
	$(PY) bench/load.py

fuzz: deps ## the parser and pipeline property tests with 100x the examples (about 20 minutes)
	GRIDTS_FUZZ_EXAMPLES=15000 timeout 1800 $(VENV)/bin/pytest -q -p no:cacheprovider \
	  tests/ingest/test_parse.py tests/ingest/test_pipeline_props.py -k "garbage or every_row or round_trip"

.PHONY: help deps influxd tools setup lint test e2e cluster-down run stop bench load fuzz results
