# Two entry points: `make run` (the whole system) and `make test` (the suite).
# Both create .venv and install requirements.txt (the checkout with its dev extras) on first use,
# and again when it or pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test

run: $(INSTALLED)
	$(BIN)/python manage.py runstack

test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

$(INSTALLED): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@
