# Two commands on a fresh machine: `make demo` and `make test`.
# The virtual environment is created on first use and reinstalled when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build by default. A GPU user overrides it, e.g. `make test TORCH_SPEC="torch==2.13.0"
# PIP_TORCH_ARGS="--index-url <PyTorch CUDA wheel index>"` (see README, "GPU install").
TORCH_SPEC     ?= torch==2.13.0
PIP_TORCH_ARGS ?=
DEMO_OUT       ?= reports/demo

.PHONY: demo test bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel

# Stamp files record which extras are installed, so a re-run is a no-op.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed-base
	$(BIN)/pip install -e ".[test]"
	touch $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-base
	$(BIN)/pip install -e ".[bench]"
	touch $@

install: $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(BIN)/workbench demo --out $(DEMO_OUT)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-bench

clean:
	rm -rf $(VENV) reports build *.egg-info
