# mmcourse: two commands do everything — `make book` and `make test`. Both bootstrap .venv first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RECORDS := _build/test-records
# One thread per worker and two workers: ~4x faster than torch's defaults on a 2-core machine.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MMCOURSE_PROFILE=quick MMCOURSE_RECORDS=$(CURDIR)/$(RECORDS) \
            HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYDEVD_DISABLE_FILE_VALIDATION=1

.PHONY: help venv book test test-full lab exercises bench gpu-check lint browser clean
help:
	@echo "make book       build the HTML book into _build/html (every notebook executed)"
	@echo "make test       the whole test suite: unit tests, notebooks (nbval), grading, book + browser check"
	@echo "make test-full  notebooks in the full profile under nbval (NB=\"book/10_crossmodal.ipynb ...\" picks some)"
	@echo "make lab        JupyterLab on the course (also as root; LAB_ARGS=\"--ip=0.0.0.0\" for a container)"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make bench      run the benchmarks and rewrite benchmarks/RESULTS.md"
	@echo "make gpu-check  every GPU claim in one 8-minute run on a CUDA machine (DRY=1: toy sizes on a CPU);"
	@echo "                then: mmcourse bench ingest _build/gpu_check/gpu_check.json (see benchmarks/GPU.md)"

venv: $(STAMP)
# The venv is reused until pyproject.toml or constraints.txt changes.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e ".[book,dev,pretrained]"
	@touch $@

book: $(STAMP)
	$(PY) -m mmcourse.authoring.book_build

# ruff, then the layering contracts of pyproject.toml ([tool.importlinter]): models never import the engine,
# data never imports models, the engine imports no model code, nothing imports the CLI.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

browser:
	@command -v chromium >/dev/null || bash .ci/install-chromium.sh

test: $(STAMP) browser lint
	rm -rf $(RECORDS) && mkdir -p $(RECORDS)
	$(TEST_ENV) MMCOURSE_BOOK_CACHE=$(CURDIR)/_build/.jupyter_cache \
	    $(PY) -m pytest -n 2 --dist loadscope -p no:cacheprovider --nbval-lax \
	    --nbval-cell-timeout=600 tests book solutions exercises --ignore=tests/after
	$(TEST_ENV) $(PY) -m mmcourse.authoring.book_build  # renders the chapters nbval just ran (conftest.py)
	$(TEST_ENV) $(PY) -m pytest -n 2 -p no:cacheprovider tests/after  # pages render in two browsers at once

# The full profile: GPU-sized runs (minutes per chapter on a GPU, up to an hour on one CPU core).
NB ?= book solutions exercises
test-full: $(STAMP)
	rm -rf $(RECORDS)-full && mkdir -p $(RECORDS)-full
	MMCOURSE_PROFILE=full MMCOURSE_RECORDS=$(CURDIR)/$(RECORDS)-full HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
	    $(PY) -m pytest -p no:cacheprovider --nbval-lax --nbval-cell-timeout=7200 -v --durations=10 $(NB)

# Works as root too (containers, cloud machines): adds --allow-root for uid 0, --no-browser without a display.
# Extra options: make lab LAB_ARGS="--ip=0.0.0.0 --port=8899"
LAB_ARGS ?=
lab: $(STAMP)
	$(PY) -m mmcourse.authoring.lab $(LAB_ARGS)

exercises: $(STAMP)
	$(VENV)/bin/mmcourse exercises

bench: $(STAMP)
	$(VENV)/bin/mmcourse bench

# No venv needed: a GPU machine may have only torch, numpy, matplotlib and pytest. Uses .venv when it exists.
GPU_PY := $(if $(wildcard $(PY)),$(PY),$(PYTHON))
gpu-check:
	$(GPU_PY) -m mmcourse.gpu_check $(if $(DRY),--dry-run) --command "make gpu-check$(if $(DRY), DRY=1)" \
	    $(GPU_CHECK_ARGS)

clean:
	rm -rf _build .jupyter_cache
