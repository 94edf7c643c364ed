# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test benchmark clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,web]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/echoreg demo --output demo_output --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo_output .pytest_cache

# Not part of set-up: the registration benchmark with its peers (installs itk-elastix, ~1.6 GB).
benchmark: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[benchmark]"
	$(BIN)/python benchmarks/benchmark_registration.py --cases 3 --frames 12
