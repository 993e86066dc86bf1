# AEGIS License Server — the targets a Django developer expects.
# `make run` and `make test` work on a fresh machine with only Python 3.11: they create .venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
HOST   ?= 127.0.0.1
PORT   ?= 8000

.DEFAULT_GOAL := help
.PHONY: help install dev-install run test browser-deps lint fmt check migrate keys bench bench-admin loadtest clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime  ## Create .venv with the runtime dependencies

dev-install: $(VENV)/.dev  ## Create .venv with the development dependencies

migrate: install  ## Apply database migrations
	$(PY) manage.py migrate --noinput

keys: migrate  ## Generate the signing key named by KEY_ID if it does not exist
	$(PY) manage.py generate_keys --if-missing

run: keys  ## Set everything up (SQLite unless DATABASE_URL is set) and serve on 127.0.0.1:8000
	$(PY) manage.py bootstrap_dev
	$(PY) manage.py runserver $(HOST):$(PORT)

test: dev-install  ## Run the whole suite (PostgreSQL when DATABASE_URL is set, else SQLite)
	@# The browser test needs Debian's chromium: installed here when missing and we are root.
	@[ -x "$${CHROMIUM_PATH:-/usr/bin/chromium}" ] || [ "$$(id -u)" != 0 ] || $(MAKE) --no-print-directory browser-deps
	$(PY) -m pytest $(PYTEST_ARGS)

browser-deps:  ## Install Debian's chromium for the browser tests (as root: apt-get)
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

lint: dev-install  ## ruff lint and format check, import layers (pyproject's importlinter)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/ruff format --check .

fmt: dev-install  ## Format and fix what ruff can
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: dev-install  ## Django system checks and missing migrations
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

bench: install  ## Load-test the server on PostgreSQL with wrk (see bench/run.py; BENCH_ARGS=...)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get update -qq && apt-get install -y -qq wrk; }; } || { echo "wrk is missing: apt-get install wrk"; exit 1; }
	$(PY) bench/run.py $(BENCH_ARGS)

loadtest: install  ## Bounded load on loopback: zero 5xx, throttles hold, no audit row lost (LOADTEST_ARGS=--seconds 30)
	$(PY) bench/load.py $(LOADTEST_ARGS)

bench-admin: install  ## Time the back-office lists with 100,000 licenses (bench/admin_changelist.py)
	$(PY) bench/admin_changelist.py $(BENCH_ARGS)

clean:  ## Remove .venv, caches and the SQLite database
	rm -rf $(VENV) .pytest_cache .ruff_cache db.sqlite3 staticfiles
