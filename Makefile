# The two Quickstart commands: `make demo` (install + default delay sweep) and `make test`
# (install + whole test suite). Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned and installed first: 2.13.0 resolves to a local CPU build, whereas letting pip
# resolve `torch` through the package's requirements would fetch gigabytes of CUDA packages.
TORCH ?= torch==2.13.0

.PHONY: install demo test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard ext/*.pyx ext/*.pxd)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: install
	$(BIN)/galasim sweep --out results/default

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf build *.egg-info galasim/*.so ext/*.c
