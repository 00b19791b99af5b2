"""Holidays by location, as a user meets them: validate checks calendar codes (subdivisions too, with
did-you-mean); `holidays: {from: candidate, default: CN}` keeps the candidate's own public holidays (from
candidate.country / candidate.subdivision), China's for candidates without one."""
from __future__ import annotations

import json
import textwrap

TEMPLATE = textwrap.dedent("""\
    {# herald: decisions=[reject] #}
    {% block subject %}Result{% endblock %}
    {% block email %}Hi {{ candidate.name }}{% endblock %}
    """)


def rules(holidays: str) -> str:
    return textwrap.dedent(f"""\
        version: 1
        windows:
          office: {{days: [mon, tue, wed, thu, fri], hours: "09:00-18:00", holidays: {holidays}}}
        defaults:
          channels: [email]
          timezone: Europe/Berlin
        rules:
          - id: everyone
            match: {{decision: reject}}
            template: any/generic
            timing: {{window: office}}
        """)


def outcome(oid: str, **cand) -> str:
    return json.dumps({"id": oid, "occurred_at": "2026-10-01T08:00:00+02:00", "decision": "reject",
                       "candidate": {"name": "Ann", "email": "ann@example.com", **cand}})


def send_times(run_cli, root, lines: list[str], now: str) -> dict:
    (root / "in.jsonl").write_text("\n".join(lines) + "\n")
    got = run_cli(["dry-run", "--outcomes", str(root / "in.jsonl"), "--format", "jsonl", "--now", now], cwd=root)
    assert got.exit_code == 0, got.stdout + got.stderr
    return {d["outcome"]: d["send_at"] for d in map(json.loads, got.stdout.splitlines())}


def test_validate_knows_subdivisions_and_suggests(run_cli, deployment):
    ok = deployment({"rules/10.yaml": rules('"DE-BE"'), "templates/any/generic.j2": TEMPLATE})
    assert run_cli(["validate", "--strict"], cwd=ok).exit_code == 0
    listed = deployment({"rules/10.yaml": rules("[CN, US-CA]"), "templates/any/generic.j2": TEMPLATE})
    assert run_cli(["validate", "--strict"], cwd=listed).exit_code == 0
    bad = deployment({"rules/10.yaml": rules('"DE-be"'), "templates/any/generic.j2": TEMPLATE})
    out = run_cli(["validate"], cwd=bad)
    assert out.exit_code == 1 and 'unknown subdivision "be" of DE' in out.stdout and '"DE-BE"' in out.stdout
    bad = deployment({"rules/10.yaml": rules("{from: candidat, default: CN}"), "templates/any/generic.j2": TEMPLATE})
    out = run_cli(["validate"], cwd=bad)
    assert out.exit_code == 1 and 'from takes "candidate"' in out.stdout


def test_the_candidates_calendar_decides(run_cli, deployment):
    root = deployment({"rules/10.yaml": rules("{from: candidate, default: CN}"),
                       "templates/any/generic.j2": TEMPLATE})
    # 1 October 2026, China's National Day (a Thursday): Berlin works, China is off until 8 October
    got = send_times(run_cli, root, [outcome("berlin", country="DE", subdivision="BE"), outcome("china")],
                     "2026-10-01T08:00:00+02:00")
    assert got["berlin"].startswith("2026-10-01T09:00:00")
    assert got["china"].startswith("2026-10-08T09:00:00")
    # 8 March 2027 (a Monday): a public holiday in Berlin only
    lines = [outcome("berlin", country="DE", subdivision="BE").replace("2026-10-01", "2027-03-08"),
             outcome("munich", country="DE", subdivision="BY").replace("2026-10-01", "2027-03-08")]
    got = send_times(run_cli, root, lines, "2027-03-08T08:00:00+01:00")
    assert got["berlin"].startswith("2027-03-09T09:00:00") and got["munich"].startswith("2027-03-08T09:00:00")
