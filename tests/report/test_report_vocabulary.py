"""Values outside the vocabulary in `herald report`: the gate marks each outcome whose role, stage, reason, locale or
attributes are outside the rule set's `vocabulary:` (kept with the outcome at intake), and the report counts them
per rule and field, with the values seen, so HR sees the typos in the ATS data (text, JSON and HTML; SQLite and
PostgreSQL). An amendment that corrects the typo clears the mark."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERALD = Path(sys.executable).with_name("herald")

RULES = textwrap.dedent("""\
    version: 1
    vocabulary:
      role: [backend, frontend]
      reason: [skills_gap, position_filled]
      attributes:
        source: [campus, referral]
    defaults:
      locale: en
      timezone: UTC
      channels: [email]
      timing: {delay: 0s}
    rules:
      - id: tech-reject
        match: {decision: reject, role: [backend, frontend]}
        template: any/generic
      - id: other-reject
        match: {decision: reject}
        template: any/generic
    """)
TEMPLATE = ("{# herald: decisions=[reject] #}\n{% block subject %}Your interview{% endblock %}\n"
            "{% block email %}Hello {{ candidate.name }}{% endblock %}\n")


def _outcome(oid: str, **extra: object) -> dict:
    o: dict = {"id": oid, "decision": "reject", "stage": "first_round", "role": "backend", "reason": "skills_gap",
               "occurred_at": "2026-11-20T10:00:00+08:00", "candidate": {"name": "Ann", "email": "ann@example.com"}}
    o.update(extra)
    return o


OUTCOMES = [
    _outcome("in-1"),                                                      # inside the vocabulary
    _outcome("typo-role", role="robotic_engineer"),                        # other-reject, role
    _outcome("typo-role-2", role="robotic_engineer", reason="skils_gap"),  # other-reject, role and reason
    _outcome("typo-reason", reason="skils_gap"),                           # tech-reject, reason
    _outcome("typo-attr", attributes={"offfice": "Berlin", "source": "campsu"}),  # tech-reject, two attributes
    _outcome("fixed-later", role="bakend"),                                # amended below with the right role
]


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    (root / "rules").mkdir(parents=True)
    (root / "templates" / "any").mkdir(parents=True)
    (root / "rules" / "10-rules.yaml").write_text(RULES)
    (root / "templates" / "any" / "generic.j2").write_text(TEMPLATE)
    (root / "herald.yaml").write_text("store: {path: herald.db}\noutbox: outbox\n")
    lines = [json.dumps(o) for o in OUTCOMES] + [json.dumps(_outcome("fixed-later"))]
    (root / "outcomes.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _expected_json() -> list[dict]:
    return [
        {"rule": "other-reject", "field": "reason", "outcomes": 1, "values": {"skils_gap": 1}},
        {"rule": "other-reject", "field": "role", "outcomes": 2, "values": {"robotic_engineer": 2}},
        {"rule": "tech-reject", "field": "attributes.offfice", "outcomes": 1, "values": {}},
        {"rule": "tech-reject", "field": "attributes.source", "outcomes": 1, "values": {"campsu": 1}},
        {"rule": "tech-reject", "field": "reason", "outcomes": 1, "values": {"skils_gap": 1}},
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_option(request: pytest.FixtureRequest) -> list[str]:
    """`--store` for each backend (empty: herald.yaml's SQLite file)."""
    if request.param == "sqlite":
        return []
    return ["--store", request.getfixturevalue("pg").create_database()]


def test_report_counts_values_outside_the_vocabulary_per_rule_and_field(run_cli, deploy, store_option) -> None:
    ingest = run_cli([*store_option, "ingest", "outcomes.jsonl", "--format", "jsonl"], cwd=deploy)
    assert ingest.exit_code == 0, ingest.output
    statuses = [json.loads(line) for line in ingest.stdout.splitlines()]
    assert [s["status"] for s in statuses] == ["matched"] * 6 + ["amended"]
    assert "outside_vocabulary" not in statuses[-1]  # the amendment corrected the role

    js = run_cli([*store_option, "report", "--format", "json"], cwd=deploy)
    assert js.exit_code == 0, js.output
    doc = json.loads(js.stdout)
    assert doc["outside_vocabulary"] == {"outcomes": 4, "by_rule_and_field": _expected_json()}

    text = run_cli([*store_option, "report"], cwd=deploy)
    assert text.exit_code == 0, text.output
    block = text.stdout.split("Outside the vocabulary", 1)[1].split("\n\n", 1)[0]
    assert "4 outcomes" in block
    lines = [" ".join(line.split()) for line in block.splitlines()]
    assert "other-reject role 2 robotic_engineer ×2" in lines
    assert "other-reject reason 1 skils_gap ×1" in lines
    assert "tech-reject attributes.offfice 1 (unknown key)" in lines
    assert "tech-reject attributes.source 1 campsu ×1" in lines

    html = run_cli([*store_option, "report", "--format", "html"], cwd=deploy)
    assert html.exit_code == 0, html.output
    section = html.stdout.split('id="vocabulary"', 1)[1].split("</section>", 1)[0]
    assert "robotic_engineer ×2" in section and "attributes.offfice" in section and "skils_gap ×1" in section


def test_report_vocabulary_follows_the_role_and_rule_filters(run_cli, deploy) -> None:
    assert run_cli(["ingest", "outcomes.jsonl"], cwd=deploy).exit_code == 0
    by_rule = json.loads(run_cli(["report", "--format", "json", "--rule", "tech-reject"], cwd=deploy).stdout)
    assert [(x["rule"], x["field"]) for x in by_rule["outside_vocabulary"]["by_rule_and_field"]] == [
        ("tech-reject", "attributes.offfice"), ("tech-reject", "attributes.source"), ("tech-reject", "reason")]
    by_role = json.loads(run_cli(["report", "--format", "json", "--role", "robotic_engineer"], cwd=deploy).stdout)
    assert by_role["outside_vocabulary"]["outcomes"] == 2
    by_channel = json.loads(run_cli(["report", "--format", "json", "--channel", "email"], cwd=deploy).stdout)
    assert by_channel["outside_vocabulary"] is None  # outcomes are not sent on a channel: not counted per channel


def test_report_without_a_vocabulary_says_nothing_about_it(run_cli, deploy) -> None:
    rules = deploy / "rules" / "10-rules.yaml"
    rules.write_text(RULES.split("vocabulary:")[0] + "defaults:" + RULES.split("defaults:", 1)[1])
    assert run_cli(["ingest", "outcomes.jsonl"], cwd=deploy).exit_code == 0
    doc = json.loads(run_cli(["report", "--format", "json"], cwd=deploy).stdout)
    assert doc["outside_vocabulary"] == {"outcomes": 0, "by_rule_and_field": []}
    assert "Outside the vocabulary" not in run_cli(["report"], cwd=deploy).stdout


@pytest.mark.slow
def test_report_counts_them_as_a_subprocess(deploy) -> None:
    def herald(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(HERALD), *args], cwd=deploy, capture_output=True, text=True, timeout=120)

    ingest = herald("ingest", "outcomes.jsonl")
    assert ingest.returncode == 0, ingest.stderr
    report = herald("report")
    assert report.returncode == 0, report.stderr
    assert "Outside the vocabulary" in report.stdout and "robotic_engineer ×2" in report.stdout
    doc = json.loads(herald("report", "--format", "json").stdout)
    assert doc["outside_vocabulary"]["by_rule_and_field"] == _expected_json()
