# C2C Stream: `make demo` and `make test` do everything on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup tools jars demo test lint typecheck unit integration up down status constraints clean

help:
	@echo "make demo   set up, start the services, run the main job"
	@echo "make test   set up, start what the tests need, run ruff, mypy and pytest, stop"
	@echo "make down   stop the local services"

# Java and Maven fetch and run Kafka and the registry; a compose client checks compose.yaml;
# promtool (Debian's prometheus package) tests the alert rules; Debian's chromium runs the
# explorer's browser tests (Playwright drives it; no browser is downloaded).
# A clean Debian machine may lack them: install from Debian's packages (needs root).
tools:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	{ docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null; } \
	  || missing="$$missing docker-compose"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: tools $(STAMP) jars

jars: $(STAMP)
	$(BIN)/c2c services fetch

demo: setup
	$(BIN)/c2c demo

up: setup
	$(BIN)/c2c services up

down:
	@test -x $(BIN)/c2c && $(BIN)/c2c services down || true

status:
	$(BIN)/c2c services status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# Starts what the tests need and stops exactly what it started, even when a step fails.
test: setup
	@started=$$($(BIN)/c2c services up --print-started) || exit $$?; \
	status=0; \
	$(BIN)/c2c topics create && $(BIN)/c2c schemas check && $(BIN)/c2c schemas register \
	  || status=1; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(MAKE) --no-print-directory typecheck || status=1; \
	$(BIN)/pytest || status=1; \
	if [ -n "$$started" ]; then \
	  $(BIN)/c2c services down $$(for s in $$started; do printf -- '--only %s ' $$s; done); \
	fi; \
	exit $$status

constraints: $(STAMP)
	(echo "# Exact versions for a fresh machine: pip install -c constraints.txt -e '.[dev]'"; \
	 echo "# Regenerate after changing dependencies: make constraints"; \
	 $(BIN)/pip freeze --exclude-editable) > constraints.txt

clean: down
	rm -rf $(VENV) .c2c .pytest_cache .mypy_cache .ruff_cache
