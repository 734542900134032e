# unweave: `make demo` sets everything up and separates the bundled example;
# `make test` sets everything up and runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-all bench lint clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: setup
	$(PY) -m unweave separate -n default --overwrite examples/example.flac
	@echo "stems written to: separated/$$($(PY) -c 'from unweave.pretrained.catalog import default_model; print(default_model())')/example/"

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf separated .pytest_cache
