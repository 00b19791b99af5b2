"""Item 8: control characters are refused in ids and single-line fields (field named) and escaped in logs and terminals."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from daemon_support import make_deployment, outcome, post
from engine.daemon.serve import setup_logging
from engine.intake.gate import check_record
from engine.store import open_store


@pytest.mark.parametrize("path,value", [
    ("id", "ann-1\n12:00:00 INFO    sent ann-2"),
    ("candidate.name", "Ann\x1b]0;pwned\x07\x1b[2J"),
    ("position.title", "Engineer\x9b2J"),
    ("stage", "first\u2028round"),
    ("feedback.note", "fine\nbut\x1b[31m"),
])
def test_the_gate_refuses_control_characters_and_names_the_field(path: str, value: str) -> None:
    record = outcome("ctl-1")
    node = record
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    result = check_record(record)
    assert result.status == "invalid" and result.field == path, result
    assert "control character" in result.error and "\x1b" not in result.error and "\n" not in result.error


def test_multi_line_text_keeps_its_line_breaks() -> None:
    assert check_record({**outcome("ctl-2"), "feedback": {"note": "line one\n\tline two"}}).status == "ok"


@pytest.mark.slow
def test_http_intake_answers_422_naming_the_field(tmp_path: Path, daemons) -> None:
    d = daemons(make_deployment(tmp_path))
    r = post(d.url, outcome("ctl\n3"))
    assert r.status_code == 422 and r.json()["field"] == "id", r.text


def test_log_lines_escape_control_characters(capsys) -> None:
    setup_logging("INFO")
    logging.getLogger("herald.test").warning("sent %s", "ann-1\n12:00:00 INFO    forged\x1b[2J")
    err = capsys.readouterr().err
    [line] = [x for x in err.splitlines() if "sent ann-1" in x]
    assert line.endswith("sent ann-1\\x0a12:00:00 INFO    forged\\x1b[2J") and "forged" not in err.replace(line, "")


def test_herald_replies_never_writes_escape_codes_to_the_terminal(tmp_path: Path, run_cli) -> None:
    db = tmp_path / "herald.db"
    with open_store(db) as store:
        store.add_reply(None, "\x1b]0;pwned\x07\x1b[2JThanks!\nSecond line\x9b", at=1_767_225_600.0, channel="sms")
    res = run_cli(["replies", "--store", str(db)])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output and "\x9b" not in res.output
    assert "\\x1b]0;pwned\\x07\\x1b[2JThanks!" in res.output and "Second line\\x9b" in res.output
    res = run_cli(["replies", "--store", str(db), "--format", "json"])
    assert "\x1b" not in res.output and "\x9b" not in res.output and "\\u009b" in res.output
