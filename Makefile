# Two commands for a new user (see README.md):
#   make demo   create .venv, install the project, run the main jobs (offline)
#   make test   run the whole test suite under TensorFlow (tutorials and the strict docs
#               build included), then again under JAX (all but the docs build)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-tensorflow test-jax docs serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m theory.prop1
	$(BIN)/python -m aatk.toy

test: test-tensorflow test-jax

test-tensorflow: $(STAMP)
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest

# The JAX pass runs what depends on Keras's backend: not the docs build (it executes every
# tutorial; the backend tutorial runs as a script instead) and not the tests marked
# backend_independent (theory/, data loading, run-folder and configuration logic).
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m "not docs and not backend_independent"

docs: $(STAMP)
	$(BIN)/mkdocs build --strict

serve: $(STAMP)
	$(BIN)/mkdocs serve

bench: $(STAMP)
	$(BIN)/python benchmarks/theory_speed.py
	$(BIN)/python benchmarks/train_step_speed.py

clean:
	rm -rf $(VENV) site .pytest_cache .hypothesis
