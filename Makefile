# The README's two commands: `make demo` (the main job) and `make test` (the test suite). Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PROFVLM_CACHE ?= $(HOME)/.cache/profvlm
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install chromium test demo bench results gpu-check clean

# The exact, tested set is constraints.txt (setup.cfg keeps ranges). torch goes first, pinned there: any other
# torch pulls a multi-GB CUDA build on these machines.
CONSTRAINTS := constraints.txt
# pip byte-compiles every file it installs on one core; compileall afterwards does the same on every core (-j 0).
# It exits 1 for the few files some packages ship that are not Python 3 (pip skips those silently too).
PIP := $(PY) -m pip install --quiet --disable-pip-version-check --no-compile -c $(CONSTRAINTS)

$(VENV)/.installed: setup.cfg pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) torch || { echo "make: step 'install torch' needs PyPI (pypi.org) and could not reach it or install; fix the network and rerun." >&2; exit 1; }
	@$(PIP) -e ".[dev,app]" || { echo "make: step 'install dependencies (setup.cfg + constraints.txt)' needs PyPI (pypi.org) and could not reach it or install; fix the network and rerun." >&2; exit 1; }
	@$(PY) -m compileall -q -j 0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") >/dev/null 2>&1 || true
	@touch $@

install: $(VENV)/.installed

# The browser test (tests/test_app.py) drives Debian's Chromium: install it where we can (root + apt-get). When we
# cannot, that test skips with the reason, so this never fails `make test`.
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "make: installing chromium with apt-get (for the browser test in tests/test_app.py)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
			|| echo "make: could not install chromium with apt-get; the browser test will skip." >&2; \
	fi

# The suite runs on PYTEST_WORKERS processes (pytest-xdist): most tests wait on one core (Python, subprocesses), so
# two workers use a 2-core machine's second core. PYTEST_WORKERS=0 runs it in this one process.
PYTEST_WORKERS ?= 2

test: install chromium
	$(PY) -m pytest -q -n $(PYTEST_WORKERS)

demo: install
	$(PY) -m profvlm.demo

bench: install
	$(PY) -m benchmarks.run_all

# The README's results tables, rewritten from benchmarks/results/*.json (run it after a benchmark wrote its report
# there); tests/test_readme_results.py fails while the page and the JSON disagree.
results: install
	$(PY) benchmarks/readme_tables.py

# On a CUDA machine: base checkpoint, data, extraction, 30 bf16 SFT steps, evaluation, prediction and the inference
# benchmark at small scale, into benchmarks/results/gpu_check.json. Without CUDA: a CPU dry run at tiny size.
gpu-check: install
	$(PY) benchmarks/gpu_check.py

# benchmarks/results/*.json are committed (the README's tables come from them): clean keeps them.
clean:
	rm -rf demo_outputs benchmarks/results/summary.json .pytest_cache
