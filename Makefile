# One command per action. Every target creates or updates .venv itself, so on a fresh clone
# `make run` and `make test` are all the set-up there is.

PYTHON ?= python3
CHROMIUM ?= /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test check lint format schemas docs bench clean

help:
	@echo "make run      the demo: the whole loop on real data, then the stack stays up"
	@echo "make test     run every test: unit, component, integration (real Kafka, PostgreSQL), e2e"
	@echo "make check    format check, ruff, mypy and the fast tests (no broker, nothing slow)"
	@echo "make lint     format check, ruff and mypy"
	@echo "make format   format the code"
	@echo "make schemas  regenerate contracts/schemas, contracts/asyncapi.yaml, docs/event-reference.md"
	@echo "make docs     regenerate the generated documents (schemas, events, configuration)"
	@echo "make bench    run the benchmarks (quick mode)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Vigil needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e . --group dev
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/vigil demo

# The console's browser tests drive Debian's Chromium (Playwright cannot download browsers here).
$(CHROMIUM):
	$(SUDO) apt-get install -y -q --no-install-recommends chromium

test: $(STAMP) $(CHROMIUM)
	$(BIN)/pytest --numprocesses 3

check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not integration and not e2e and not slow"

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: $(STAMP)
	$(BIN)/python -m contracts.generate

docs: schemas
	$(BIN)/vigil settings > docs/configuration.md

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
