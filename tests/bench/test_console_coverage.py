"""bench/console.py's check that every desk GET endpoint is timed: a path counts for a template only when it
is an instance of it (each `{name}` one whole segment), not when it merely starts like it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template_matches():
    # (console.py finds its sibling report.py itself, as `make bench-console` runs it from anywhere)
    spec = importlib.util.spec_from_file_location("bench_console", ROOT / "bench" / "console.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.template_matches


@pytest.mark.parametrize(("template", "path", "covered"), [
    ("/v1/queue", "/v1/queue", True),
    ("/v1/queue", "/v1/queue/x", False),
    ("/v1/history/{outcome_id}", "/v1/history/ats-0001", True),
    ("/v1/outcomes/{outcome_id}/preview", "/v1/outcomes/held-1/preview", True),
    ("/v1/outcomes/{outcome_id}/preview", "/v1/outcomes/held-1", False),  # the prefix check counted this
    ("/v1/outcomes/{outcome_id}", "/v1/outcomes/held-1/preview", False),
    ("/console/dead-letters/{id}", "/console/dead-letters/5000", True),
    ("/console/dead-letters/{id}", "/console/dead-letters/", False),
    ("/v1/a.b", "/v1/aXb", False),  # literal parts are literal
])
def test_a_timed_path_covers_only_its_own_template(template_matches, template, path, covered):
    assert template_matches(template, path) is covered
