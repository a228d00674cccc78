# stream-detector: the two quickstart commands and the usual chores.
#
#   make demo    set up .venv, then run the end-to-end demo on an embedded broker
#   make test    set up .venv, then run the whole test suite (doctests and integration tests)
#
# Setup happens once: .venv is created with $(PYTHON) and the project installed editable with
# its development extras; it is redone only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS ?= --disable-pip-version-check --progress-bar off
PYTEST_ARGS ?=
TEST_JOBS ?= 2
DEMO_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint format bench clean distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

venv: $(STAMP)  ## create .venv and install the project with its development extras

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "stream-detector needs Python >= 3.11; '$(PYTHON)' is older or missing." \
		     "Run: make PYTHON=python3.11 $(MAKECMDGOALS)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $@

demo: $(STAMP)  ## run the end-to-end demo (broker, training, live stream, alerts)
	$(BIN)/stream-detector demo $(DEMO_ARGS)

test: $(STAMP)  ## run the whole test suite (in TEST_JOBS=2 worker processes; TEST_JOBS=0: in one)
	$(BIN)/pytest -n $(TEST_JOBS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff lint, ruff format check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## run every script in benchmarks/ (they print their own ratios)
	@set -e; scripts="$$(ls benchmarks/*.py 2>/dev/null | grep -v '/_' || true)"; \
	if [ -z "$$scripts" ]; then echo "no benchmarks in benchmarks/"; exit 0; fi; \
	for script in $$scripts; do echo "== $$script"; $(BIN)/python $$script; done

clean:  ## remove caches, build output, demo/report output and the README session's files (keeps .venv)
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis \
		demo-output reports models session history.csv live.jsonl live-labels.jsonl live.csv \
		decisions.jsonl
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean  ## also remove .venv
	rm -rf $(VENV)
