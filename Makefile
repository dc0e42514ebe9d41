# EnviroLIMS. Every target sets itself up first (scripts/setup.sh: Debian packages when root,
# .venv, pip install -e '.[dev]', compiled catalogues); a second setup is a no-op.
#   make demo                      demo data in ./var, served on http://127.0.0.1:8000
#   make test [ARGS='-k custody']  SQLite, plus PostgreSQL when reachable (one worker per CPU, at most 4; LIMS_TEST_PARALLEL=0: one process)
#   make bench [ONLY=scenario]     benchmarks, results in var/bench.json
#   make lint | make i18n | make clean

SHELL := /bin/bash
BIN := .venv/bin

.DEFAULT_GOAL := help
.PHONY: help setup demo test bench lint i18n clean

help:
	@sed -n 's/^#   //p' Makefile

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/lims demo

test: setup
	bash scripts/test.sh $(ARGS)

bench: setup
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY),)

lint: setup
	$(BIN)/ruff check app tests bench

i18n: setup
	$(BIN)/pybabel extract -F babel.cfg -o app/locale/messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i app/locale/messages.pot -d app/locale -D messages --no-fuzzy-matching --ignore-obsolete

clean:
	rm -rf var tests/e2e/screenshots .pytest_cache .ruff_cache
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
