# The two commands: `make run` starts the server on its embedded defaults,
# `make test` runs the whole suite. Each creates the virtualenv it needs.
# Settings come from TOOMBOS_* variables, e.g. `TOOMBOS_PORT=8080 make run`.
PY ?= python3
VENV := .venv
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint typecheck pytest bench clean

$(VENV)/bin/python:
	$(PY) -m venv $(VENV)

# `run` installs only what the server needs, so a fresh clone is serving in seconds.
$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(RUN_STAMP) $@

# Bytecode first (only what changed is recompiled): where writing it on import is off
# (PYTHONDONTWRITEBYTECODE, usual in containers) every start would compile the package.
run: $(RUN_STAMP)
	$(VENV)/bin/python -m compileall -q toombos_edge
	exec $(VENV)/bin/toombos-edge serve

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy toombos_edge

pytest: $(TEST_STAMP)
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

bench: $(TEST_STAMP)
	$(VENV)/bin/python bench/startup.py
	$(VENV)/bin/python bench/http.py

clean:
	rm -rf $(VENV) build *.egg-info
