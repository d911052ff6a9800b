# Two commands on a fresh machine: `make demo` and `make test`.
# The virtual environment is created on first use and reinstalled when pyproject.toml changes.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build by default. A GPU user overrides it, e.g. `make test TORCH_SPEC="torch==2.13.0"
# PIP_TORCH_ARGS="--index-url <PyTorch CUDA wheel index>"` (see README, "GPU install").
TORCH_SPEC     ?= torch==2.13.0
PIP_TORCH_ARGS ?=
# pip byte-compiles all it installs, on one core (torch alone: 18 s of a 26 s install); we
# install without, and Python compiles the few hundred modules a run imports on first use.
# Where PYTHONDONTWRITEBYTECODE is set (as in CI) that bytecode is never written and every
# process would recompile its imports (the suite: 475 s -> 690 s), so there the venv is
# compiled once, on every core, skipping the packages' own test suites (files that do not
# compile, Python 2 examples, are skipped). Fresh `make test` venv: 141 s -> about 80 s.
PIP            := $(BIN)/pip install --no-compile
COMPILE         = [ -z "$$PYTHONDONTWRITEBYTECODE" ] || $(BIN)/python -m compileall -qq -j 0 -x '/tests?/' \
                  "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
DEMO_OUT       ?= reports/demo

.PHONY: demo test bench vision install clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile --upgrade pip setuptools wheel

# Stamp files record which extras are installed, so a re-run is a no-op.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(PIP) $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(PIP) -e .
	$(COMPILE)
	touch $@

# An extra (.installed-test, .installed-bench) installs with the base in one pip call (one
# resolution, one editable build), so it also stamps the base as installed.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(PIP) $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(PIP) -e ".[$*]"
	$(COMPILE)
	touch $(VENV)/.installed-base $@

install: $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(BIN)/workbench demo --out $(DEMO_OUT)

# The report's render test drives Debian's headless Chromium; install it when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# If the install fails, the suite still runs and the render test fails with a message naming chromium.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium) || \
	  echo "warning: could not install chromium (apt-get); the report render test will fail"

# Two pytest-xdist workers, a test module at a time each (conftest.py starts the longest first;
# xdist would otherwise reorder the modules by their number of tests, which put a module that
# waits for the simulated brain's training first, and the longest modules later).
# Side by side on 2 cores, BLAS and torch threads must not spin while waiting: two processes with
# spinning 2-thread pools each ran 4-6x slower than one alone (OpenBLAS eigh 4x, torch training 6x).
TEST_WORKERS ?= 2
test: $(VENV)/.installed-test chromium
	OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile \
	  --no-loadscope-reorder

bench: $(VENV)/.installed-bench

# torchvision and timm models: replaces the CPU torch by the matching pair of the `vision` extra
# (on x86_64 a CUDA build of torch, about 5.5 GB in the venv).
vision: $(VENV)/.installed-base
	$(PIP) -e ".[vision]"
	$(COMPILE)

clean:
	rm -rf $(VENV) reports build *.egg-info
