"""The command line through click's CliRunner (validate, dry-run, test), plus the installed `herald` as a subprocess."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


Y = textwrap.dedent
REPO = Path(__file__).resolve().parents[2]
HERALD = Path(sys.executable).with_name("herald")
NOW = "2026-11-20T10:00:00+08:00"  # a Friday, inside business hours in Asia/Shanghai
SPEC_KEYS = ["outcome", "status", "rule", "template", "locale", "channels", "send_at"]
DIAG_KEYS = {"file", "line", "column", "severity", "code", "message"}
DIAG_LINE = re.compile(r"^[^:\s]+:\d+:\d+: (error|warning): .+ \[[a-z-]+\]$")

TEMPLATE_BLOCKS = Y("""\
    {% block subject %}Your interview for {{ position.title or "the role" }}{% endblock %}
    {% block sms %}Hi {{ candidate.name }}, about {{ position.title or "your interview" }}.{% endblock %}
    {% block dingtalk %}Hi {{ candidate.name }}, about {{ position.title }}.{% endblock %}
    {% block email %}Hi {{ candidate.name }}, about {{ position.title }}.{% endblock %}
    {% block webhook %}{"candidate": "{{ candidate.id }}"}{% endblock %}
    """)

FILES = {
    "rules/10-main.yaml": Y("""\
        version: 1
        defaults:
          locale: zh-CN
          timezone: Asia/Shanghai
          channels: [dingtalk, email]
          timing: {delay: 30m, window: business-hours, deadline: 24h}
        windows:
          business-hours: {days: [mon, tue, wed, thu, fri], hours: "09:00-18:00"}
        rules:
          - id: reject-tech
            match: {decision: reject, role: backend}
            when: score >= 60
            template: reject/generic
          - id: reject-all
            match: {decision: reject}
            template: reject/generic
            channels: [email, sms]
          - id: offer-all
            match: {decision: offer}
            template: offer/standard
            channels: [webhook, sms, email]
            timing: {delay: 0s, window: business-hours}
          - id: pass-all
            match: {decision: pass}
            template: pass/next
        """),
    "templates/reject/generic.j2": "{# herald: decisions=[reject] #}\n" + TEMPLATE_BLOCKS,
    "templates/reject/generic.en.j2": "{# herald: decisions=[reject] #}\n" + TEMPLATE_BLOCKS,
    "templates/offer/standard.j2": "{# herald: decisions=[offer] #}\n" + TEMPLATE_BLOCKS,
    "templates/pass/next.j2": "{# herald: decisions=[pass] #}\n" + TEMPLATE_BLOCKS,
    "rules/tests/cases.yaml": Y("""\
        - name: backend reject with a good score goes to reject-tech
          outcome: {decision: reject, role: backend, score: 70}
          expect: {rule: reject-tech, template: reject/generic, channels: [dingtalk, email]}
        - name: any other reject
          outcome: {decision: reject, role: sales}
          expect: {rule: reject-all, status: matched}
        """),
}

WARNING_ONLY = {  # valid, but with one warning (an unreachable rule)
    "rules/20-extra.yaml": Y("""\
        version: 1
        rules:
          - id: reject-sales
            match: {decision: reject, role: sales}
            template: reject/generic
            channels: [email]
        """),
}

BROKEN = {
    "rules/20-extra.yaml": Y("""\
        version: 1
        rules:
          - id: hold-final
            match: {decision: hold, stage: final}
            tempalte: offer/standard
            channels: [email]
        """),
}


def outcome(oid: str, **fields) -> dict:
    """A valid outcome; `candidate` entries given as candidate_<key>, None to leave the key out."""
    cand = {"id": "c-1", "name": "张伟", "email": "zhangwei@example.com", "phone": "+8613800000000",
            "dingtalk_userid": "zw01", "locale": "zh-CN", "timezone": "Asia/Shanghai"}
    for key in list(fields):
        if key.startswith("candidate_"):
            value = fields.pop(key)
            name = key[len("candidate_"):]
            if value is None:
                cand.pop(name, None)
            else:
                cand[name] = value
    out = {"id": oid, "occurred_at": "2026-11-20T10:30:00+08:00", "decision": "reject", "stage": "first_round",
           "role": "backend", "score": 72, "approved": True, "candidate": cand,
           "position": {"id": "p-1", "title": "后端开发工程师", "department": "研发中心"}}
    out.update(fields)
    return out


def jsonl(*records) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)


MIXED = jsonl(
    outcome("o-matched"),                                                  # reject-tech
    outcome("o-unmatched", decision="hold"),                               # no hold rule
    outcome("o-held", approved=False),
    outcome("o-matched"),                                                  # same id, same content again
    "this is not json",
    {"id": "o-invalid", "decision": "maybe"},
    outcome("o-sales", role="sales", candidate_phone=None),                # reject-all, no phone: sms left out
)


@pytest.fixture
def dep(deployment) -> Path:
    return deployment(FILES)


def lines_of(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


# ---------------------------------------------------------------------------------------------------
# validate


def test_validate_repo_examples_exit_0(run_cli) -> None:
    result = run_cli(["validate"], cwd=REPO)
    assert result.exit_code == 0, result.output
    assert "ok:" in result.stderr
    assert all(DIAG_LINE.match(line) and ": warning: " in line for line in result.stdout.splitlines())


def test_validate_repo_by_path_from_elsewhere(run_cli, tmp_path) -> None:
    result = run_cli(["validate", str(REPO)], cwd=tmp_path)
    assert result.exit_code == 0, result.output


def test_validate_clean_deployment(run_cli, dep) -> None:
    result = run_cli(["validate"], cwd=dep)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert re.match(r"ok: 4 rules in 1 files, 3 templates, 4 channels \(rule-set version [0-9a-f]+\)", result.stderr)


def test_validate_problems_text(run_cli, deployment) -> None:
    result = run_cli(["validate"], cwd=deployment({**FILES, **BROKEN}))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        'rules/20-extra.yaml:5:5: error: unknown key "tempalte" in rule "hold-final" (did you mean "template"?) '
        "[unknown-key]"]
    assert result.stderr.strip() == "1 error(s), 0 warning(s)"


def test_validate_problems_json(run_cli, deployment) -> None:
    root = deployment({**FILES, **WARNING_ONLY,
                       "rules/30-more.yaml": "version: 1\nrules:\n  - id: x\n    match: {decision: hold}\n"
                                             "    template: offer/standard\n    channels: [fax]\n"})
    result = run_cli(["validate", "--format", "json"], cwd=root)
    assert result.exit_code == 1
    got = json.loads(result.stdout)
    assert isinstance(got, list)
    for item in got:
        assert set(item) == DIAG_KEYS
        assert isinstance(item["line"], int) and isinstance(item["column"], int)
    assert [(d["file"], d["line"], d["column"], d["severity"], d["code"]) for d in got] == [
        ("rules/20-extra.yaml", 3, 5, "warning", "unreachable-rule"),
        ("rules/30-more.yaml", 5, 15, "error", "template-decision"),
        ("rules/30-more.yaml", 6, 16, "error", "unknown-channel"),
    ]
    assert got[2]["message"] == 'unknown channel "fax" (configured: dingtalk, sms, email, webhook)'
    text = run_cli(["validate"], cwd=root)
    assert [f'{d["file"]}:{d["line"]}:{d["column"]}: {d["severity"]}: {d["message"]} [{d["code"]}]'
            for d in got] == text.stdout.splitlines()


def test_validate_json_when_clean_is_an_empty_list(run_cli, dep) -> None:
    result = run_cli(["validate", "--format", "json"], cwd=dep)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_strict_turns_warnings_into_failure(run_cli, deployment) -> None:
    root = deployment({**FILES, **WARNING_ONLY})
    plain = run_cli(["validate"], cwd=root)
    assert plain.exit_code == 0
    assert [line.split(": ")[1] for line in plain.stdout.splitlines()] == ["warning"]
    assert "unreachable-rule" in plain.stdout
    strict = run_cli(["validate", "--strict"], cwd=root)
    assert strict.exit_code == 1
    assert strict.stdout == plain.stdout


def test_strict_on_clean_is_0(run_cli, dep) -> None:
    assert run_cli(["validate", "--strict"], cwd=dep).exit_code == 0


def test_validate_single_rule_file_and_missing_path(run_cli, dep) -> None:
    one = run_cli(["validate", "rules/10-main.yaml"], cwd=dep)
    assert one.exit_code == 0, one.output
    missing = run_cli(["validate", "rules/nope.yaml"], cwd=dep)
    assert missing.exit_code == 1
    assert "nope.yaml" in missing.stdout


def test_validate_with_config_option(run_cli, deployment, tmp_path) -> None:
    root = deployment({**FILES, "conf/h.yaml": "rules: ../rules\ntemplates: ../templates\nchannels:\n"
                                               "  email: {transport: outbox}\n  dingtalk: {transport: outbox}\n"
                                               "  webhook: {transport: outbox}\n"})
    result = run_cli(["validate", "--config", "conf/h.yaml"], cwd=root)
    assert result.exit_code == 1
    assert [line.split(": error: ")[0] for line in result.stdout.splitlines()] == [
        "rules/10-main.yaml:17:23", "rules/10-main.yaml:21:25"]
    assert all('unknown channel "sms"' in line for line in result.stdout.splitlines())


@pytest.mark.parametrize("args", [
    ["validate", "--bogus"],
    ["validate", "--format", "xml"],
    ["no-such-command"],
    ["dry-run"],                                   # --outcomes is required
    ["dry-run", "--outcomes", "does-not-exist.jsonl"],
    ["dry-run", "--outcomes", "-", "--format", "csv"],
])
def test_usage_errors_exit_2(run_cli, dep, args) -> None:
    result = run_cli(args, cwd=dep, input="")
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr or "Error:" in result.stderr


def test_help_lists_the_commands(run_cli) -> None:
    result = run_cli(["--help"])
    assert result.exit_code == 0
    for name in ("validate", "dry-run", "test"):
        assert name in result.stdout


# ---------------------------------------------------------------------------------------------------
# dry-run --format jsonl


def test_dry_run_jsonl_statuses_keys_and_order(run_cli, dep) -> None:
    (dep / "in.jsonl").write_text(MIXED, encoding="utf-8")
    result = run_cli(["dry-run", "--outcomes", "in.jsonl", "--format", "jsonl", "--now", NOW], cwd=dep)
    assert result.exit_code == 0, result.output
    got = lines_of(result)
    assert [(g["outcome"], g["status"]) for g in got] == [
        ("o-matched", "matched"), ("o-unmatched", "unmatched"), ("o-held", "held"), ("o-matched", "duplicate"),
        (None, "invalid"), ("o-invalid", "invalid"), ("o-sales", "matched")]
    matched = got[0]
    assert list(matched)[:7] == SPEC_KEYS
    assert matched == {**matched, "rule": "reject-tech", "template": "reject/generic",
                       "channels": ["dingtalk", "email"], "send_at": "2026-11-20T11:00:00+08:00"}
    for g in got:
        assert list(g)[:2] == ["outcome", "status"]
        if g["status"] == "matched":
            assert list(g)[:7] == SPEC_KEYS
    assert list(got[1]) == ["outcome", "status"]                       # unmatched: nothing more to say
    assert got[2]["rule"] == "reject-tech" and "send_at" not in got[2]   # held: not scheduled
    assert list(got[3]) == ["outcome", "status"]
    assert got[4]["outcome"] is None and got[4]["error"].startswith("not JSON")
    assert got[5]["outcome"] == "o-invalid" and "error" in got[5]
    assert "candidate" in got[5]["error"] or "decision" in got[5]["error"]
    # the summary goes to stderr, so stdout stays one JSON object per input line
    assert "7 outcomes: 2 matched, 1 unmatched, 1 held, 1 duplicate, 2 invalid" in result.stderr
    assert "rules never hit (2): offer-all, pass-all" in result.stderr


def test_dry_run_locale_follows_the_candidate(run_cli, dep) -> None:
    result = run_cli(["dry-run", "--outcomes", "-", "--format", "jsonl", "--now", NOW], cwd=dep,
                     input=jsonl(outcome("a", candidate_locale="en"), outcome("b", candidate_locale="en-GB")))
    assert [g["locale"] for g in lines_of(result)] == ["en", "en"]   # en-GB falls back to the en file


def test_dry_run_send_at_in_the_candidates_time_zone(run_cli, dep) -> None:
    records = jsonl(outcome("london", candidate_timezone="Europe/London"),
                    outcome("nowhere", candidate_timezone="Mars/Base"))
    london, nowhere = lines_of(run_cli(["dry-run", "--outcomes", "-", "--format", "jsonl", "--now", NOW], cwd=dep,
                                       input=records))
    assert london["send_at"] == "2026-11-20T09:00:00+00:00"   # 02:30 London + 30m, window opens 09:00 London
    assert nowhere["status"] == "invalid" and "candidate.timezone" in nowhere["error"]  # never the rule's zone


def test_dry_run_channels_leave_out_missing_addresses(run_cli, dep) -> None:
    records = jsonl(
        outcome("no-ding", candidate_dingtalk_userid=None),                      # reject-tech: [dingtalk, email]
        outcome("no-phone", role="sales", candidate_phone=None),                 # reject-all: [email, sms]
        outcome("offer-bare", decision="offer", candidate_phone=None, candidate_email=None,
                candidate_dingtalk_userid=None),                                 # offer-all: [webhook, sms, email]
        outcome("offer-full", decision="offer"),
    )
    got = lines_of(run_cli(["dry-run", "--outcomes", "-", "--format", "jsonl", "--now", NOW], cwd=dep,
                           input=records))
    assert [g["channels"] for g in got] == [["email"], ["email"], ["webhook"], ["webhook", "sms", "email"]]
    assert got[1].get("skipped_channels") == ["sms"]


def test_dry_run_now_makes_send_at_reproducible(run_cli, dep) -> None:
    records = jsonl(outcome("a"), outcome("b", decision="offer", occurred_at="2026-11-20T19:30:00+08:00"))
    args = ["dry-run", "--outcomes", "-", "--format", "jsonl"]
    first = run_cli(args + ["--now", NOW], cwd=dep, input=records)
    again = run_cli(args + ["--now", NOW], cwd=dep, input=records)
    assert first.stdout == again.stdout
    a, b = lines_of(first)
    assert a["send_at"] == "2026-11-20T11:00:00+08:00"   # occurred 10:30 + 30m, inside the window
    assert b["send_at"] == "2026-11-23T09:00:00+08:00"   # Friday 19:30: the window opens Monday 09:00
    late = lines_of(run_cli(args + ["--now", "2026-11-20T15:00:00+08:00"], cwd=dep, input=records))
    assert late[0]["send_at"] == "2026-11-20T15:00:00+08:00"   # never before now
    utc = lines_of(run_cli(args + ["--now", "2026-11-20T02:00:00Z"], cwd=dep, input=records))
    assert utc == [a, b]                                        # the same instant written in UTC


def test_dry_run_reads_stdin(run_cli, dep) -> None:
    result = run_cli(["dry-run", "--outcomes", "-", "--format", "jsonl", "--now", NOW], cwd=dep, input=MIXED)
    assert result.exit_code == 0
    assert len(lines_of(result)) == 7


def test_dry_run_empty_input(run_cli, dep) -> None:
    result = run_cli(["dry-run", "--outcomes", "-", "--format", "jsonl"], cwd=dep, input="")
    assert result.exit_code == 0
    assert result.stdout == ""


@pytest.mark.parametrize("now", ["yesterday", "2026-11-20T10:00:00", "2026-13-01T00:00:00+08:00"])
def test_dry_run_bad_now_exit_2(run_cli, dep, now) -> None:
    result = run_cli(["dry-run", "--outcomes", "-", "--now", now], cwd=dep, input=MIXED)
    assert result.exit_code == 2
    assert "--now" in result.stderr


def test_dry_run_invalid_rules_exit_1(run_cli, deployment) -> None:
    result = run_cli(["dry-run", "--outcomes", "-", "--format", "jsonl"], cwd=deployment({**FILES, **BROKEN}),
                     input=MIXED)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "rules/20-extra.yaml:5:5: error:" in result.stderr
    assert "rules are invalid" in result.stderr


# ---------------------------------------------------------------------------------------------------
# dry-run --explain and the text format


def test_explain_lists_rules_tried_with_reasons(run_cli, dep) -> None:
    records = jsonl(outcome("x"), outcome("low", score=40), outcome("y", role="sales"))
    result = run_cli(["dry-run", "--outcomes", "-", "--explain", "y", "--now", NOW], cwd=dep, input=records)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "rules tried for y:"
    assert re.match(r"^\s+reject-tech\s+rules/10-main\.yaml:10\s+✗ role: wanted backend, got sales$", lines[1])
    assert re.match(r"^\s+reject-all\s+rules/10-main\.yaml:14\s+✓ matched$", lines[2])
    plan = json.loads(lines[3])
    assert plan["outcome"] == "y" and plan["rule"] == "reject-all"

    low = run_cli(["dry-run", "--outcomes", "-", "--explain", "low", "--now", NOW], cwd=dep, input=records)
    assert "reject-tech" in low.stdout.splitlines()[1] and "score" in low.stdout.splitlines()[1]


def test_explain_unmatched_and_unknown_id(run_cli, dep) -> None:
    records = jsonl(outcome("h", decision="hold"))
    result = run_cli(["dry-run", "--outcomes", "-", "--explain", "h"], cwd=dep, input=records)
    assert result.exit_code == 0
    assert "wanted reject, got hold" in result.stdout
    assert "no rule matched" in result.stdout
    missing = run_cli(["dry-run", "--outcomes", "-", "--explain", "nope"], cwd=dep, input=records)
    assert missing.exit_code == 1
    assert "nope" in missing.stderr


def test_text_format_masks_pii_unless_asked(run_cli, dep) -> None:
    records = jsonl(outcome("s", role="sales"))   # reject-all: email, sms
    masked = run_cli(["dry-run", "--outcomes", "-", "--now", NOW], cwd=dep, input=records)
    assert masked.exit_code == 0
    assert "zhangwei@example.com" not in masked.stdout
    assert "+8613800000000" not in masked.stdout and "13800000000" not in masked.stdout
    assert "zh***@example.com" in masked.stdout
    assert re.search(r"\+86\d*\*{4}0000", masked.stdout)
    shown = run_cli(["dry-run", "--outcomes", "-", "--now", NOW, "--show-pii"], cwd=dep, input=records)
    assert "zhangwei@example.com" in shown.stdout and "+8613800000000" in shown.stdout


def test_text_format_table_and_summary(run_cli, dep) -> None:
    result = run_cli(["dry-run", "--outcomes", "-", "--now", NOW, "--no-messages"], cwd=dep, input=MIXED)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["OUTCOME", "STATUS", "RULE", "CHANNELS", "SEND_AT"]
    rows = lines[1:8]
    assert [r.split()[1] for r in rows] == ["matched", "unmatched", "held", "duplicate", "invalid", "invalid",
                                           "matched"]
    assert rows[0].split()[2:5] == ["reject-tech", "dingtalk,email", "2026-11-20"]
    assert "7 outcomes: 2 matched, 1 unmatched, 1 held, 1 duplicate, 2 invalid" in lines
    assert "rules never hit (2): offer-all, pass-all" in lines
    assert any(line.startswith("late (past deadline): 0") for line in lines)


def test_text_format_does_not_print_python_none(run_cli, dep) -> None:
    result = run_cli(["dry-run", "--outcomes", "-", "--now", NOW], cwd=dep, input=jsonl("not json"))
    assert "None" not in result.stdout


def test_dry_run_repo_examples(run_cli) -> None:
    source = (REPO / "examples" / "outcomes.jsonl").read_text(encoding="utf-8").splitlines()
    result = run_cli(["dry-run", "--outcomes", "examples/outcomes.jsonl", "--format", "jsonl", "--now", NOW],
                     cwd=REPO)
    assert result.exit_code == 0, result.stderr
    got = lines_of(result)
    assert len(got) == len(source)
    statuses = {g["status"] for g in got}
    assert statuses <= {"matched", "unmatched", "held", "duplicate", "amended", "invalid"}
    assert {"matched", "held", "duplicate", "invalid"} <= statuses
    for line, g in zip(source, got, strict=False):
        try:
            want = json.loads(line).get("id")
        except ValueError:
            want = None
        assert g["outcome"] == (want if isinstance(want, str) else None)
        if g["status"] == "matched":
            assert list(g)[:7] == SPEC_KEYS
        if g["status"] == "invalid":
            assert g["error"]


# ---------------------------------------------------------------------------------------------------
# test


def test_test_command_on_repo_examples(run_cli) -> None:
    result = run_cli(["test"], cwd=REPO)
    assert result.exit_code == 0, result.output
    m = re.fullmatch(r"(\d+) passed, 0 failed", result.stdout.splitlines()[-1])
    assert m and int(m[1]) > 0


def test_test_command_passes(run_cli, dep) -> None:
    result = run_cli(["test", "-v"], cwd=dep)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed"
    assert result.stdout.count("PASS") == 2


def test_test_command_shows_expected_and_actual(run_cli, deployment) -> None:
    root = deployment({**FILES, "rules/tests/cases.yaml": Y("""\
        - name: backend reject goes to reject-tech
          outcome: {decision: reject, role: backend, score: 70}
          expect: {rule: reject-tech}
        - name: wrong expectation
          outcome: {decision: reject, role: sales}
          expect: {rule: reject-tech, channels: [sms]}
        """)})
    result = run_cli(["test"], cwd=root)
    assert result.exit_code == 1
    out = result.stdout.splitlines()
    assert out[-1] == "1 passed, 1 failed"
    assert "FAIL  rules/tests/cases.yaml:4  wrong expectation" in out
    assert any("rule: expected 'reject-tech', got 'reject-all'" in line for line in out)
    assert any("channels: expected" in line for line in out)
    assert any("wanted backend, got sales" in line for line in out)


def test_test_command_with_invalid_rules_exit_1(run_cli, deployment) -> None:
    result = run_cli(["test"], cwd=deployment({**FILES, **BROKEN}))
    assert result.exit_code == 1
    assert "unknown-key" in result.stderr


# ---------------------------------------------------------------------------------------------------
# the installed console script


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.slow
def test_installed_herald_validate_subprocess() -> None:
    assert HERALD.is_file(), f"console script not installed at {HERALD}"
    proc = subprocess.run([str(HERALD), "validate"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok:" in proc.stderr


@pytest.mark.slow
def test_installed_herald_dry_run_stdin_subprocess(deployment) -> None:
    root = deployment(FILES)
    proc = subprocess.run([str(HERALD), "dry-run", "--outcomes", "-", "--format", "jsonl", "--now", NOW],
                          cwd=root, input=MIXED, capture_output=True, text=True, timeout=60, env=_env())
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [g["status"] for g in got] == ["matched", "unmatched", "held", "duplicate", "invalid", "invalid",
                                         "matched"]
    assert got[0]["send_at"] == "2026-11-20T11:00:00+08:00"


@pytest.mark.slow
def test_installed_herald_usage_error_subprocess(tmp_path) -> None:
    proc = subprocess.run([str(HERALD), "validate", "--no-such-option"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=_env())
    assert proc.returncode == 2


@pytest.mark.parametrize("args", [["unmatched"], ["replies"], ["report"]])
def test_a_corrupt_store_is_a_message_not_a_traceback(run_cli, tmp_path, args) -> None:
    (tmp_path / "herald.db").write_bytes(b"this is not a SQLite database " * 100)
    result = run_cli(args, cwd=tmp_path)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith(f"herald {args[0]}: ") and "not a database" in result.stderr


def test_herald_debug_shows_the_traceback(run_cli, tmp_path) -> None:
    (tmp_path / "herald.db").write_bytes(b"this is not a SQLite database " * 100)
    with pytest.raises(Exception, match="not a database"):
        run_cli(["unmatched"], cwd=tmp_path, env={"HERALD_DEBUG": "1"})


@pytest.mark.slow
def test_validate_reports_a_template_that_cannot_render_without_python_noise(tmp_path: Path) -> None:
    """`{% set x = 5[::-1] %}` compiles to Python `5[::-1]`: validate reports it at the template's line, and the
    compiler's SyntaxWarning (at a line of the generated code) no longer reaches stderr."""
    import shutil

    for part in ("rules", "templates"):
        shutil.copytree(REPO / part, tmp_path / part)
    path = tmp_path / "templates" / "reject" / "campus.j2"
    path.write_text(path.read_text("utf-8").replace("{% block subject %}", "{% block subject %}{% set x = 5[::-1] %}",
                                                    1), "utf-8")
    proc = subprocess.run([str(HERALD), "validate", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=_env())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "campus.j2:3:1: error: block subject fails to render" in out and "not subscriptable" in out, out
    assert "SyntaxWarning" not in out and "perhaps you missed a comma" not in out, out
