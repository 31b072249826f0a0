# Two commands on a fresh machine with Python 3 and make:
#   make demo   set up .venv, install bptt, run the built-in demo
#   make test   set up .venv with the test extras, run the linter and the whole test suite
# and, while working: make test-fast   (unit, gradient-check and reference tests; no end-to-end runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast lint bench clean

$(VENV)/.core: pyproject.toml setup.py src/bptt/_kernels.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/bptt demo

lint: $(VENV)/.test
	$(PY) -m ruff check src tests benchmarks

test: lint
	$(PY) -m pytest

test-fast: lint
	$(PY) -m pytest -m "not slow"

bench: $(VENV)/.test
	$(PY) benchmarks/bench_rnn.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info src/bptt/*.so
