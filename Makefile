# `make run` and `make test` each prepare .venv on Python >= 3.12, then start / test the product.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

# The machines' default python3 may be too old: look for 3.12+ on PATH, then in pyenv.
PYTHON_BOOT := $(shell for c in python3.13 python3.12 $$HOME/.pyenv/versions/3.13*/bin/python3 $$HOME/.pyenv/versions/3.12*/bin/python3 python3; do \
	p=$$(command -v $$c 2>/dev/null) || continue; \
	$$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: venv run test test-fast lint system-deps worker bench clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON_BOOT)" || { echo "No Python >= 3.12 found (tried PATH and ~/.pyenv/versions)"; exit 1; }
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v WARNING || true
	$(PY) -m pip install -q -e '.[dev]' 2>&1 | grep -v "WARNING: Location" || true
	$(PY) -c "import django, channels, openai" 
	touch $@

venv: $(VENV)/.installed

# Debian packages the product uses at run time (code interpreter sandbox) and the tests use.
system-deps:
	@bash scripts/system-deps.sh

run: venv
	-@bash scripts/system-deps.sh runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py bootstrap
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

worker: venv
	$(PY) manage.py run_worker

test: lint
	@bash scripts/system-deps.sh test
	@bash scripts/test.sh

# mypy's settings (strict; tests may be unannotated) are in pyproject.toml.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy chatsite assistants_app tests

# The quick engine benchmark; every other one (bench/bench_*.py) and its command is in docs/benchmarks.md.
bench: venv
	$(PY) -m bench.bench_engine

clean:
	rm -rf $(VENV) var
