# herald: `make run` and `make test` work from a fresh clone with only Python installed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HERALD := $(VENV)/bin/herald
STAMP  := $(VENV)/.installed

.PHONY: run test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(HERALD) validate
	$(HERALD) dry-run --outcomes examples/outcomes.jsonl

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/validate.py

clean:
	rm -rf $(VENV) herald.db outbox
