# unweave: `make demo` sets everything up and separates the bundled example;
# `make test` sets everything up and runs the test suite; `make lint` checks the code with ruff.
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

bench: setup  # minutes to an hour; figures land in bench/results/
	$(PY) bench/speed.py --seconds 180 --threads 2 --repeats 1
	$(PY) bench/memory.py --model default --minutes 1 60 --threads 1

lint: setup  # ruff, pinned in requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m ruff check src tests tools bench

clean:
	rm -rf separated .pytest_cache
