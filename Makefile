# Two entry points a new user needs: `make demo` and `make test`. Both create .venv on first
# use with the CPU build of torch (constraints/cpu.txt); on a GPU machine use
# `make install CONSTRAINTS=constraints/gpu.txt` first (see docs/install.md).
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints/cpu.txt
BIN := $(VENV)/bin
LAKE ?= demo-lake

.PHONY: install demo test test-fast test-kernels lint clean

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e '.[test]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/batchjobs demo --lake $(LAKE)

# The default pytest run is the CPU suite (unit + integration, one shared local Ray).
# Kernel tests run in their own process under the Triton interpreter, so TRITON_INTERPRET
# never leaks into the Ray workers of the integration tests.
test: install
	$(BIN)/python -m pytest
	TRITON_INTERPRET=1 $(BIN)/python -m pytest tests/kernels

test-fast: install
	$(BIN)/python -m pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(LAKE)
