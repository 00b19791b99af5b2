# herald: `make run` and `make test` work from a fresh clone with only Python installed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HERALD := $(VENV)/bin/herald
STAMP  := $(VENV)/.installed

.PHONY: run test bench bench-daemon venv clean

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

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/validate.py

bench-daemon: $(STAMP)
	$(PY) bench/daemon.py

clean:
	rm -rf $(VENV) herald.db outbox
