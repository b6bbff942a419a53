# The two commands in the README: `make demo` and `make test`. Each installs
# what it needs (a project-local .venv, the Kafka jars, PostgreSQL) by itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install kafka-jars services lint test test-fast demo bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

kafka-jars: install
	$(BIN)/python -c 'from fedbroker import KafkaCluster; KafkaCluster().ensure_jars()'

services: install kafka-jars
	deploy/tools/ensure.sh
	@if [ -x deploy/postgres/ensure.sh ]; then deploy/postgres/ensure.sh; fi

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Two pytest-xdist workers share one Kafka started here (tests/conftest.py groups
# the tests); it is stopped again whatever the tests' outcome.
TEST_KAFKA_PORT := 29092
test: lint services
	$(BIN)/fedbroker kafka up --port $(TEST_KAFKA_PORT) --fresh
	KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(TEST_KAFKA_PORT) $(BIN)/pytest -n 2 --dist loadgroup \
	  $(PYTEST_ARGS); status=$$?; $(BIN)/fedbroker kafka down --port $(TEST_KAFKA_PORT); \
	  exit $$status

test-fast: install
	$(BIN)/pytest -m "not kafka and not postgres and not slow" $(PYTEST_ARGS)

demo: install kafka-jars
	$(BIN)/fedbroker demo

bench: services
	$(BIN)/python -m bench

clean:
	-$(BIN)/fedbroker kafka down
	rm -rf $(VENV) .fedbroker .mypy_cache .ruff_cache .pytest_cache
