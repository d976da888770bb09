# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install forethought, run the embedded default (Pendulum-v1 MPC)
#   make test   same set-up, then the default (fast) test tier
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# sweep (Ray Tune) measured: 10 s and 245 MiB to install next to the others
EXTRAS ?= dev,baselines,lm,sweep,offline,box2d

.PHONY: setup demo test test-slow lint format clean

setup: $(VENV)/.installed

# --system-site-packages lets a torch the user already has be reused; torch==2.13.0 (the CPU
# wheel) is installed first only when no torch imports, because an open `torch` requirement
# would pull a CUDA build of several GB.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv --system-site-packages $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	@touch $@

demo: setup
	$(VENV)/bin/forethought demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: setup
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
