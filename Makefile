# The README's two commands: `make demo` (the main job) and `make test` (the test suite). Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PROFVLM_CACHE ?= $(HOME)/.cache/profvlm
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test demo bench clean

# torch is installed first and pinned exactly: an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0 || { echo "make: step 'install torch' needs PyPI (pypi.org) and could not reach it or install; fix the network and rerun." >&2; exit 1; }
	@$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]" || { echo "make: step 'install dependencies (setup.cfg)' needs PyPI (pypi.org) and could not reach it or install; fix the network and rerun." >&2; exit 1; }
	@touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) -m training.demo

bench: install
	$(PY) -m benchmarks.run_all

clean:
	rm -rf demo_outputs benchmarks/results .pytest_cache
