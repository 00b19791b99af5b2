"""A rule file's `company:` (an office, a brand): loaded onto each of its rules, checked by the schema, and merged
over herald.yaml's company in what templates see (dry-run here; send time in tests/daemon/test_send_time_render.py)."""
from __future__ import annotations

import json

import pytest

from engine.config.deployment import load_deployment

TEMPLATE = """{# herald: decisions=[reject] #}
{% block subject %}Result{% endblock %}
{% block email %}{{ company.name }} / {{ company.contact }}{% endblock %}
"""
RULE = "rules:\n  - {id: RID, match: {decision: reject}, template: any/t, channels: [email], locale: en}\n"
HERALD = "company: {name: Head Office, contact: hr@example.com}\n"


def files(*rule_files: str) -> dict:
    out = {"herald.yaml": HERALD, "templates/any/t.j2": TEMPLATE}
    for i, text in enumerate(rule_files):
        out[f"rules/{i}0-r.yaml"] = text.replace("RID", f"r{i}")
    return out


@pytest.mark.parametrize("company, expect, problem", [
    ("", (), None),
    ("company: {name: Shanghai Office}\n", (("name", "Shanghai Office"),), None),
    ('company: {name: B, website: "https://b.example", contact: hr@b.example, sender: "B HR <hr@b.example>"}\n',
     (("name", "B"), ("website", "https://b.example"), ("contact", "hr@b.example"), ("sender", "B HR <hr@b.example>")),
     None),
    ("company: {nme: B}\n", (), ('did you mean "name"', 2)),
    ("company: {name: 3}\n", (), ("name", 2)),
    ("company: [B]\n", (), ("company", 2)),
])
def test_rule_file_company_is_loaded_onto_its_rules_or_located(deployment, monkeypatch, company, expect, problem):
    root = deployment(files("version: 1\n" + company + RULE))
    monkeypatch.chdir(root)
    dep = load_deployment()
    errors = [d for d in dep.diagnostics if d.is_error]
    if problem is None:
        assert not errors, errors
        assert dep.ruleset.rules[0].company == expect
    else:
        text, line = problem
        assert errors and text in errors[0].message and errors[0].line == line, errors
        assert errors[0].file.endswith("rules/00-r.yaml")


def test_dry_run_renders_each_rule_files_company(run_cli, deployment):
    root = deployment(files("version: 1\ncompany: {name: Shanghai Office}\n" + RULE.replace("reject}", "reject, role: a}"),
                            "version: 1\ncompany: {name: Brand B, contact: hr@b.example}\n" + RULE,
                            "version: 1\n" + RULE))
    outcomes = "".join(json.dumps({"id": f"o-{role}", "decision": "reject", "stage": "s", "role": role,
                                   "candidate": {"name": "Ann", "email": "ann@example.com"}}) + "\n"
                       for role in ("a", "b"))
    result = run_cli(["dry-run", "--outcomes", "-", "--now", "2026-11-20T10:00:00+08:00", "--show-pii"], cwd=root, input=outcomes)
    assert result.exit_code == 0, result.output
    assert "Shanghai Office / hr@example.com" in result.stdout     # herald.yaml's contact stays under the office name
    assert "Brand B / hr@b.example" in result.stdout
    assert "Head Office" not in result.stdout
