# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: setup demo test bench luigid clean

# --no-cache-dir: no second copy of the wheels (TensorFlow alone is ~600 MB) on a tight CI disk
$(INSTALLED): requirements.txt setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	$(PY) -m pip install -q --no-cache-dir -r requirements.txt
	$(PY) -m pip install -q --no-cache-dir --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	touch $(INSTALLED)

setup: $(INSTALLED)

demo: setup
	$(PY) -m antibodies.demo --out $(DEMO_DIR)

test: setup
	$(PY) -m pytest tests luigi_tasks antibodies --doctest-modules -q

# Framework overhead and no-op reruns at 96 and 864 images (~6 min; docs/performance.md lists the other
# sections, e.g. `make bench BENCH_ARGS="--only real --real-images 16"`).
BENCH_DIR ?= /tmp/bench_scale
BENCH_ARGS ?= --only overhead noop
bench: setup
	$(PY) bench/scale.py --root $(BENCH_DIR) $(BENCH_ARGS)

LUIGID_DIR ?= $(HOME)/batchlib-scheduler

# The central scheduler on 127.0.0.1:8082 (docs/operations.md); stop it with
# `$(PY) -m luigi_tasks.scheduler stop --state-dir $(LUIGID_DIR)`.
luigid: setup
	$(PY) -m luigi_tasks.scheduler start --state-dir $(LUIGID_DIR)

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
