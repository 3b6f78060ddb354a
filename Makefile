# Two commands for a new user (see README.md):
#   make demo   create .venv, install the project, run the main jobs (offline)
#   make test   run the whole test suite (tutorials and the strict docs build included)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test docs serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m theory.prop1
	$(BIN)/python -m aatk.toy

test: $(STAMP)
	$(BIN)/python -m pytest

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

serve: $(STAMP)
	$(BIN)/mkdocs serve

bench: $(STAMP)
	$(BIN)/python benchmarks/theory_speed.py

clean:
	rm -rf $(VENV) site .pytest_cache .hypothesis
