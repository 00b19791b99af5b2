# herald: `make run` and `make test` work from a fresh clone with only Python installed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HERALD := $(VENV)/bin/herald
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench bench-validate bench-dryrun bench-daemon bench-report venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

# Starts `herald serve` on the defaults (herald.db, outbox/, 127.0.0.1:8025) with time x600, posts
# examples/outcomes.jsonl to it and shows each message as it is sent; Ctrl-C stops it cleanly.
run: $(STAMP)
	$(HERALD) validate
	$(PY) -m engine.daemon.demo

# ruff and mypy as configured in pyproject.toml; `make test` runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

# Each benchmark prints its figures, ratios against baselines measured in the same run, and
# "target met" / "TARGET MISSED" lines. About 10 minutes in all on 2 cores.
bench: bench-validate bench-dryrun bench-daemon bench-report

bench-validate: $(STAMP)
	$(PY) bench/validate.py

bench-dryrun: $(STAMP)
	$(PY) bench/dryrun.py

bench-daemon: $(STAMP)
	$(PY) bench/daemon.py

bench-report: $(STAMP)
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) herald.db outbox
