# The two Quickstart commands: `make demo` (install + default delay sweep) and `make test`
# (install + whole test suite). Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned and installed first: 2.13.0 resolves to a local CPU build, whereas letting pip
# resolve `torch` through the package's requirements would fetch gigabytes of CUDA packages.
TORCH ?= torch==2.13.0

.PHONY: install demo test test-debug clean

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
	$(MAKE) test-debug

# The differential tests again, against a copy of the package built with Cython's bounds,
# wraparound and initialisation checks on: an out-of-bounds read fails a test instead of
# producing a number. Run from build/debug so that its copy of galasim is the one imported.
DEBUG_DIR := build/debug
test-debug: install
	$(BIN)/python -m pip install -q "Cython>=3"  # a build requirement, absent from the venv
	rm -rf $(DEBUG_DIR) && mkdir -p $(DEBUG_DIR) && cp -r galasim $(DEBUG_DIR)/
	GALASIM_CYTHON_DEBUG=1 $(BIN)/python setup.py -q build_ext --build-lib $(DEBUG_DIR) \
		--build-temp $(DEBUG_DIR)/tmp --force
	cd $(DEBUG_DIR) && GALASIM_EXPECT_DEBUG=1 $(abspath $(BIN))/python -m pytest -q -p no:cacheprovider \
		-W error::pytest.PytestUnraisableExceptionWarning \
		$(CURDIR)/tests/test_verdicts.py $(CURDIR)/tests/test_sim.py $(CURDIR)/tests/test_crash_repair.py \
		-k "agree or debug"

clean:
	rm -rf build *.egg-info galasim/*.so ext/*.c
