# Fieldstation: `make run` serves the app, `make test` checks it. Both set themselves up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed-dev
# uWSGI (the fieldstation[uwsgi] extra) where pyuwsgi has a wheel: a 64-bit Python on x86 or ARM.
# Elsewhere (32-bit Raspberry Pi OS, also on a 64-bit kernel) it would need a compiler;
# `fieldstation serve` then uses gunicorn.
EXTRAS ?= $(shell $(PYTHON) -c "import platform, struct; print('[uwsgi]' if struct.calcsize('P') == 8 \
	and platform.machine() in ('x86_64', 'aarch64', 'arm64') else '')")

.PHONY: run test lint typecheck pytest install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.$(EXTRAS)'
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/fieldstation serve --init --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
