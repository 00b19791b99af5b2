# herald: `make run` and `make test` work from a fresh clone with only Python installed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HERALD := $(VENV)/bin/herald
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: run test lint screenshots bench bench-validate bench-dryrun bench-daemon bench-report bench-peers bench-sources bench-cluster bench-console venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

# The peers of bench/peers.py (the `bench` extra). durable-rules builds a C extension: if it cannot be
# built here, the rest still installs and the benchmark prints it as unavailable.
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test,bench]" \
	  || $(PY) -m pip install --quiet --disable-pip-version-check zen-engine \
	  || echo "bench extra: a peer did not install; bench/peers.py prints it as unavailable"
	touch $(BENCH_STAMP)

# Starts `herald serve` on the defaults (herald.db, outbox/, 127.0.0.1:8025) with time x600, posts
# examples/outcomes.jsonl to it and shows each message as it is sent; Ctrl-C stops it cleanly.
run: $(STAMP)
	$(HERALD) validate
	$(PY) -m engine.cli.demo

# ruff and mypy as configured in pyproject.toml; `make test` runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

# The browser tests (headless Chromium) writing the README's screenshots to docs/screenshots/; any other run of the
# tests writes them to a temporary directory and leaves the tree as it was.
screenshots: $(STAMP)
	HERALD_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/console/test_console_browser.py

# Each benchmark prints its figures, ratios against baselines measured in the same run, and
# "target met" / "TARGET MISSED" lines. About 15 minutes in all on 2 cores.
bench: bench-validate bench-dryrun bench-peers bench-daemon bench-report bench-sources bench-cluster

# bench-validate, bench-dryrun, bench-peers, bench-daemon, bench-report, bench-sources, bench-console, and
# bench-cluster (several replicas on one PostgreSQL, a throwaway cluster with fsync on; needs initdb/pg_ctl):
# each runs bench/NAME.py.
BENCHES := bench-validate bench-dryrun bench-peers bench-daemon bench-report bench-sources bench-cluster bench-console
$(BENCHES): bench-%: $(BENCH_STAMP)
	$(PY) bench/$*.py

clean:
	rm -rf $(VENV) herald.db outbox
