# The two commands: `make run` starts the server on its embedded defaults,
# `make test` runs the whole suite. Each creates the virtualenv it needs.
# Settings come from TOOMBOS_* variables, e.g. `TOOMBOS_PORT=8080 make run`.
PY ?= python3
# A bench piped through tee fails when the bench fails, not only when tee does.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := .venv
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint typecheck pytest bench bench-pg clean

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

# Every bench of bench/README.md's table, in the order of the table; output in bench/out/.
# About 30 minutes on 2 cores; run it on a quiet machine.
bench: $(TEST_STAMP)
	mkdir -p bench/out
	$(VENV)/bin/python -m bench.startup --rounds 5 | tee bench/out/startup.txt
	$(VENV)/bin/python -m bench.http_rps | tee bench/out/http.txt
	$(VENV)/bin/python -m bench.jobs --workers 8,64 --jobs 10000 --skip list | tee bench/out/jobs.txt
	$(VENV)/bin/python -m bench.jobs --workers 8 --jobs 10000 --skip inproc,http,list --observers | tee bench/out/observers.txt
	$(VENV)/bin/python -m bench.jobs --skip inproc,http | tee bench/out/list.txt
	$(VENV)/bin/python -m bench.activity --skip jobs | tee bench/out/activity.txt
	$(VENV)/bin/python -m bench.analytics | tee bench/out/analytics.txt
	$(VENV)/bin/python -m bench.ws | tee bench/out/ws.txt
	$(VENV)/bin/python -m bench.ingest | tee bench/out/ingest.txt
	$(VENV)/bin/python -m bench.ratelimit | tee bench/out/ratelimit.txt
	$(VENV)/bin/python -m bench.generate | tee bench/out/generate.txt
	$(VENV)/bin/python -m bench.restart | tee bench/out/restart.txt

# The PostgreSQL rows of bench/README.md's table: a PostgreSQL of its own (Debian's
# postgresql, installed when missing), the peers PgQueuer and procrastinate in venvs of their
# own under bench/out/venvs (made from PyPI when missing). About 20 minutes on 2 cores,
# most of it procrastinate (10,000 jobs a run at 100-200 jobs/s).
bench-pg: $(TEST_STAMP)
	mkdir -p bench/out
	$(VENV)/bin/python -m bench.pg_jobs --workers 8,64 --jobs 10000 | tee bench/out/pg_jobs.txt

clean:
	rm -rf $(VENV) build *.egg-info
