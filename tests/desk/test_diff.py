"""The impact of a rule change (engine/desk/diff.py, `herald diff`): outcomes received in the window are planned
with both rule sets; changed rule, template, channel order and send time are counted, with examples."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from daemon_support import RULES, make_deployment, outcome

from cli import main
from engine.config.deployment import load_deployment
from engine.desk.diff import impact, impact_text
from engine.intake.batch import intake
from engine.pipeline import Pipeline
from engine.store import open_store

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
NEW_RULES = RULES.replace("    timing: {delay: 1h}", "    timing: {delay: 3h}").replace(
    "  - id: now\n    match: {decision: reject}\n    template: any/generic\n",
    "  - id: now\n    match: {decision: reject, stage: final}\n    template: any/generic\n"
    "  - id: reject-sms-first\n    match: {decision: reject}\n    template: any/generic\n    channels: [sms, email]\n")


def _setup(tmp_path):
    root = make_deployment(tmp_path)
    new = tmp_path / "new-rules"
    new.mkdir()
    (new / "10-rules.yaml").write_text(NEW_RULES)
    dep = load_deployment([str(root / "rules")], str(root / "herald.yaml"))
    store = open_store(root / "herald.db")
    old = Pipeline(dep, now=NOW)
    intake([outcome("r1"), outcome("r2"), outcome("h1", decision="hold"), outcome("o1", decision="offer")],
           old, store, "test", now=NOW)
    intake([outcome("old", decision="hold")], old, store, "test", now=NOW - timedelta(days=30))
    return root, new, dep, store


def test_impact_counts_rule_channel_and_time_changes_with_examples(tmp_path):
    root, new, dep, store = _setup(tmp_path)
    proposed = load_deployment([str(new)], str(root / "herald.yaml"))
    assert proposed.ok, [d.format() for d in proposed.diagnostics]
    with store:
        imp = impact(store, Pipeline(dep, now=NOW, render_channels="first"),
                     Pipeline(proposed, now=NOW, render_channels="first"), (NOW - timedelta(days=7)).timestamp(),
                     examples=2)
    assert imp.outcomes == 4  # `old` was received before the window
    assert imp.changed == 3 and imp.by_field == {"rule": 2, "template": 0, "channels": 2, "send_at": 1}
    assert imp.moves == {"now -> reject-sms-first": 2}
    assert [e.outcome_id for e in imp.examples] == ["h1", "r1"] and imp.examples[1].new["channels"] == ["sms", "email"]
    assert imp.examples[0].changed == ("send_at",)
    assert "3 of 4 outcome(s)" in impact_text(imp) and "now -> reject-sms-first" in impact_text(imp)


def test_herald_diff_command(tmp_path, monkeypatch):
    root, new, _dep, store = _setup(tmp_path)
    store.close()
    monkeypatch.chdir(root)
    r = CliRunner().invoke(main, ["diff", "--rules", str(new), "--since", "3650d", "--format", "json",
                                  "--config", str(root / "herald.yaml")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["outcomes"] == 5 and doc["by_field"]["rule"] == 2
    r = CliRunner().invoke(main, ["diff", "--rules", str(new), "--since", "soon", "--config",
                                  str(root / "herald.yaml")])
    assert r.exit_code == 2 and "duration" in r.output


def test_proposed_rule_files_replace_one_by_name_or_add_it_in_order(tmp_path):
    from engine.desk.diff import proposed_rule_files

    current = [tmp_path / "rules" / n for n in ("10-a.yaml", "30-c.yaml")]
    work = tmp_path / "work"
    work.mkdir()
    assert proposed_rule_files(current, "30-c.yaml", "version: 1\n", work) == [current[0], work / "30-c.yaml"]
    assert proposed_rule_files(current, "20-b.yaml", "version: 1\n", work) == [current[0], work / "20-b.yaml",
                                                                               current[1]]
    assert (work / "20-b.yaml").read_text() == "version: 1\n"
    for name, text in (("../x.yaml", "v"), ("x.txt", "v"), ("a.yaml", " \n"), ("a.yaml", "x" * 300_000)):
        with pytest.raises(ValueError):
            proposed_rule_files(current, name, text, work)
    assert sorted(p.name for p in work.iterdir()) == ["20-b.yaml", "30-c.yaml"]  # nothing written outside
