# Two entry points: `make run` (the whole system) and `make test` (the suite).
# Both create .venv and install requirements.txt (the checkout with its dev extras) on first use,
# and again when it or pyproject.toml changes. `make test` also installs the browser tests' npm
# packages (axe-core, pinned by tests/browser/package-lock.json) when npm is there; without npm
# the accessibility tests are skipped, except in CI (.ci/run installs npm).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NODE_MODULES := tests/browser/node_modules/.package-lock.json

.PHONY: run test

run: $(INSTALLED)
	$(BIN)/python manage.py runstack

test: $(INSTALLED) $(if $(shell command -v npm),$(NODE_MODULES))
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(INSTALLED): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(NODE_MODULES): tests/browser/package.json tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund
	touch $@
