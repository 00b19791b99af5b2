"""One front door: the same lines give the same statuses in `herald dry-run` and `herald ingest` (same decoder,
same gate, same no-address verdict), and dry-run reads a CSV export exactly as ingest does."""
from __future__ import annotations

import json
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOW = "2026-11-20T10:00:00+08:00"
HEADER = "{# herald: decisions=[reject] #}\n"
FILES = {
    "rules/10.yaml": textwrap.dedent("""\
        version: 1
        defaults: {locale: zh-CN, timezone: Asia/Shanghai, timing: {delay: 30m}}
        rules:
          - id: reject-all
            match: {decision: reject}
            template: reject/generic
            channels: [email, sms]
        """),
    "templates/reject/generic.j2": HEADER + "{% block subject %}About {{ position.title }}{% endblock %}"
                                            "{% block email %}Hi {{ candidate.name }}{% endblock %}"
                                            "{% block sms %}Hi {{ candidate.name }}{% endblock %}",
}


def _outcome(oid: str, decision: str, name: str, email: bool, approved: bool | None, score: str) -> str:
    cand = {"name": name}
    if email:
        cand["email"] = "a@example.com"
    fields = [f'"id": {json.dumps(oid)}', f'"decision": {json.dumps(decision)}',
              '"candidate": ' + json.dumps(cand), '"position": {"title": "Backend"}']
    if approved is not None:
        fields.append(f'"approved": {json.dumps(approved)}')
    if score:
        fields.append(f'"score": {score}')
    return "{" + ", ".join(fields) + "}"


_lines = st.one_of(
    st.builds(_outcome, oid=st.sampled_from(["a", "b", "c"]), decision=st.sampled_from(["reject", "pass", "nope"]),
              name=st.sampled_from(["Li", "W\\ud800", "\\ud83d\\ude00"]), email=st.booleans(),
              approved=st.sampled_from([None, True, False]),
              score=st.sampled_from(["", "80", "NaN", "Infinity", "-Infinity", "1e400"])),
    st.sampled_from(['{"id": "d", "decision": "reject", "decision": "reject", "candidate": {"name": "x"}}',
                     '{"id": "e", "decision": "reject", "candidate": {"name": "x", "email": "a@example.com"}}',
                     "not json", "[1, 2]", '"text"', "{}", '{"id": "f"}']),
)


def _statuses(result) -> list:
    return [(d.get("outcome", d.get("id")), d["status"]) for d in map(json.loads, result.stdout.splitlines())]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_lines, min_size=1, max_size=8))
def test_dry_run_and_ingest_give_the_same_statuses(lines, run_cli, deployment) -> None:
    root = deployment(FILES)
    (root / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dry = run_cli(["dry-run", "--outcomes", "in.jsonl", "--format", "jsonl", "--now", NOW], cwd=root)
    ingested = run_cli(["ingest", "in.jsonl", "--format", "jsonl"], cwd=root)
    assert dry.exit_code == 0 and ingested.exit_code == 0, (dry.output, ingested.output)
    assert _statuses(dry) == _statuses(ingested)
    assert len(_statuses(dry)) == len(lines)


@pytest.mark.parametrize("line, status", [
    ('{"id": "n", "decision": "reject", "score": NaN, "candidate": {"name": "x", "email": "a@example.com"}}', "invalid"),
    ('{"id": "s", "decision": "reject", "candidate": {"name": "\\ud800", "email": "a@example.com"}}', "invalid"),
    ('{"id": "k", "decision": "reject", "decision": "pass", "candidate": {"name": "x", "email": "a@example.com"}}',
     "invalid"),
    ('{"id": "q", "decision": "reject", "candidate": {"name": "x"}}', "unmatched"),   # no address for email or sms
])
def test_dry_run_verdicts_the_daemon_gives(run_cli, deployment, line: str, status: str) -> None:
    root = deployment(FILES)
    dry = run_cli(["dry-run", "--outcomes", "-", "--format", "jsonl", "--now", NOW], cwd=root, input=line + "\n")
    got = json.loads(dry.stdout)
    assert got["status"] == status
    if status == "unmatched":
        assert got["rule"] == "reject-all" and "no address" in got["error"]


def test_dry_run_reads_csv_as_ingest_does(run_cli, deployment) -> None:
    root = deployment(FILES)
    csv = ("id,decision,candidate.name,candidate.email,score,approved\n"
           "c1,reject,Li,li@example.com,80,\n"
           "c2,reject,Wang,,,\n"
           "c3,reject,Zhao,z@example.com,,no\n"
           "c4,maybe,Qian,q@example.com,,\n")
    (root / "export.csv").write_text(csv, encoding="utf-8")
    dry = run_cli(["dry-run", "--outcomes", "export.csv", "--format", "jsonl", "--now", NOW], cwd=root)
    ingested = run_cli(["ingest", "export.csv", "--format", "jsonl"], cwd=root)
    assert _statuses(dry) == _statuses(ingested) == [
        ("c1", "matched"), ("c2", "unmatched"), ("c3", "held"), ("c4", "invalid")]
