# Two commands from a fresh clone:  make demo   and   make test
# Both create what is missing (system packages, .venv, sample data) and nothing more: a second run
# checks a few stamp files and starts at once.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VSTW := $(VENV)/bin/vstw
PY := $(VENV)/bin/python
ENV_STAMP := $(VENV)/.vstw-env
SYS_STAMP := $(VENV)/.vstw-system
LS_STAMP := .venv-ls/.vstw-env
# llama.cpp is compiled for the embedded teacher; the default (native) build uses AMX
# instructions that crash on some CPUs, so the features are named explicitly.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
APT_PACKAGES := ffmpeg chromium chromium-driver

.PHONY: help demo test samples env system ls-env clean-runs

help:
	@echo "make demo   - set up (if needed) and run the demo recipe end to end on the sample data"
	@echo "make test   - set up (if needed) and run the whole test suite"
	@echo "make samples / make env / make ls-env / make clean-runs"

demo: env samples
	$(VSTW) demo

test: env ls-env samples
	$(PY) -m pytest -q

samples: env
	@$(VSTW) samples

env: $(ENV_STAMP)

# System packages (Debian): ffmpeg for video writing; chromium and chromium-driver (driven
# through Selenium) for the page tests: the review page test and the chain gallery test.
# Re-checked when this Makefile changes, so a package added here reaches existing checkouts.
$(SYS_STAMP): Makefile
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@mkdir -p $(VENV) && touch $@

$(ENV_STAMP): pyproject.toml .ci/constraints.txt | $(SYS_STAMP)
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 is required (python3.11 not found)"; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch and torchvision first, exactly these builds (they share one CUDA/CPU runtime).
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet -c .ci/constraints.txt -e ".[teacher,dev]"
	@touch $@
	@echo "environment ready: $(VENV)"

# Label Studio's server lives in its own environment: it pins openai<2 and pyarrow<25.
ls-env: $(LS_STAMP)
$(LS_STAMP): annotation/setup-ls-env.sh
	bash annotation/setup-ls-env.sh
	@touch $@

clean-runs:
	rm -rf data/runs data/catalog.duckdb
