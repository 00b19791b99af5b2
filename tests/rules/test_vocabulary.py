"""Vocabularies (`vocabulary:` in rule files): loaded and merged onto the rule set, shapes checked by the schema,
`herald validate` flagging match values and `when` literals outside it (located, did-you-mean), and the gate
accepting outcomes with values outside it with a warning (dry-run, ingest) and a count in dry-run's summary."""
from __future__ import annotations

import dataclasses
import json
import textwrap

import pytest

from engine.config.deployment import load_deployment

NOW = "2026-11-20T10:00:00+08:00"
VOCAB = textwrap.dedent("""\
    version: 1
    vocabulary:
      role: [backend, frontend]
      stage: [first_round, final]
      reason: [skills_gap]
      locale: [zh-CN, en]
      attributes:
        source: [campus, referral]
        requisition: null
    """)
RULES = textwrap.dedent("""\
    version: 1
    defaults: {locale: en, timezone: UTC, channels: [email], timing: {delay: 0s}}
    rules:
      - id: tech
        match: {decision: reject, role: [backend, frontend]}
        when: attributes.source == "campus"
        template: any/t
      - id: rest
        match: {decision: reject}
        template: any/t
    """)
TEMPLATE = ("{# herald: decisions=[reject] #}\n{% block subject %}Result{% endblock %}\n"
            "{% block email %}Hello {{ candidate.name }}{% endblock %}\n")


def files(rules: str = RULES, vocab: str = VOCAB, **more: str) -> dict:
    return {"rules/05-vocabulary.yaml": vocab, "rules/10-rules.yaml": rules, "templates/any/t.j2": TEMPLATE, **more}


def test_the_vocabulary_is_on_the_rule_set_merged_across_files(deployment, monkeypatch):
    more = "version: 1\nvocabulary:\n  role: [sales]\n  attributes: {office: [sh, be]}\n"
    monkeypatch.chdir(deployment(files(**{"rules/06-more.yaml": more})))
    dep = load_deployment()
    assert not [d for d in dep.diagnostics if d.is_error], dep.diagnostics
    vocab = dep.ruleset.vocabulary
    assert vocab["role"] == frozenset({"backend", "frontend", "sales"})
    assert vocab["stage"] == frozenset({"first_round", "final"})
    assert vocab["candidate.locale"] == frozenset({"zh-CN", "en"})
    assert vocab["attributes.source"] == frozenset({"campus", "referral"})
    assert vocab["attributes.office"] == frozenset({"sh", "be"})
    assert "attributes.requisition" not in vocab and "requisition" in vocab.attribute_keys   # any value
    assert frozenset({"sh", "be"}) in list(vocab.values())   # the Mapping's own values(), not a field
    with pytest.raises(dataclasses.FrozenInstanceError):
        vocab.entries = ()  # type: ignore[misc]


def test_without_a_vocabulary_nothing_is_declared(deployment, monkeypatch):
    monkeypatch.chdir(deployment({"rules/10-rules.yaml": RULES, "templates/any/t.j2": TEMPLATE}))
    dep = load_deployment()
    assert not dep.ruleset.vocabulary and dict(dep.ruleset.vocabulary) == {}


@pytest.mark.parametrize("vocab, line, text", [
    ("version: 1\nvocabulary:\n  roles: [backend]\n", 3, 'did you mean "role"'),
    ("version: 1\nvocabulary:\n  role: backend\n", 3, "role"),
    ("version: 1\nvocabulary:\n  locale: [english]\n", 3, 'locale "english" is not a language tag'),
])
def test_a_bad_vocabulary_is_a_located_error(run_cli, deployment, vocab, line, text):
    result = run_cli(["validate"], cwd=deployment(files(vocab=vocab)))
    assert result.exit_code != 0
    assert f"rules/05-vocabulary.yaml:{line}:" in result.output and text in result.output, result.output


def test_validate_flags_match_values_and_when_literals_outside_the_vocabulary(run_cli, deployment):
    rules = RULES.replace("[backend, frontend]", "[backend, frontent]").replace(
        'attributes.source == "campus"', 'attributes.source == "campsu" or attributes.offfice == "sh"')
    result = run_cli(["validate"], cwd=deployment(files(rules=rules)))
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if "outside-vocabulary" in ln]
    assert len(lines) == 3, result.output
    role, source, office = lines
    assert role.startswith("rules/10-rules.yaml:5:") and 'rule "tech"' in role
    assert 'role "frontent" is not in the vocabulary (did you mean "frontend"?)' in role
    assert source.startswith("rules/10-rules.yaml:6:") and 'attributes.source "campsu"' in source
    assert 'did you mean "campus"' in source
    assert office.startswith("rules/10-rules.yaml:6:") and 'rule "tech" when' in office
    assert "attributes.offfice is not an attribute in the vocabulary" in office


def test_validate_is_clean_when_rules_use_the_vocabulary(run_cli, deployment):
    result = run_cli(["validate"], cwd=deployment(files()))
    assert result.exit_code == 0, result.output
    assert "outside-vocabulary" not in result.output


def _outcome(oid: str, **extra) -> str:
    o = {"id": oid, "decision": "reject", "stage": "first_round", "role": "backend",
         "candidate": {"name": "Ann", "email": "ann@example.com", "locale": "en-US"}, "attributes": {"source": "campus"}}
    o.update(extra)
    return json.dumps(o)


OUTSIDE = [_outcome("in"),
           _outcome("bad-role", role="robotic_engineer"),
           _outcome("bad-attr", attributes={"offfice": "sh", "requisition": "REQ-1"}),
           _outcome("bad-locale", candidate={"name": "Ann", "email": "ann@example.com", "locale": "fr"})]


def test_dry_run_and_ingest_accept_outcomes_outside_the_vocabulary_with_a_warning(run_cli, deployment):
    root = deployment(files())
    (root / "in.jsonl").write_text("\n".join(OUTSIDE) + "\n")
    dry = run_cli(["dry-run", "--outcomes", "in.jsonl", "--format", "jsonl", "--now", NOW], cwd=root)
    ingested = run_cli(["ingest", "in.jsonl", "--format", "jsonl"], cwd=root)
    for result in (dry, ingested):
        assert result.exit_code == 0, result.output
        docs = [json.loads(ln) for ln in result.stdout.splitlines()]
        assert [d["status"] for d in docs] == ["matched"] * 4
        warnings = [d.get("warning") for d in docs]
        assert warnings[0] is None
        assert 'role "robotic_engineer" is not in the vocabulary' in warnings[1]
        assert 'attributes.offfice is not an attribute in the vocabulary' in warnings[2]
        assert "requisition" not in warnings[2]
        assert 'candidate.locale "fr" is not in the vocabulary' in warnings[3]


def test_dry_runs_summary_counts_outcomes_outside_the_vocabulary(run_cli, deployment):
    root = deployment(files())
    result = run_cli(["dry-run", "--outcomes", "-", "--now", NOW], cwd=root, input="\n".join(OUTSIDE) + "\n")
    assert result.exit_code == 0, result.output
    assert "outside the vocabulary: 3" in result.output


def test_validate_warns_when_a_declared_locale_reaches_no_file_of_a_rules_template(run_cli, deployment):
    only_zh = {"templates/any/t.zh-CN.j2": TEMPLATE}  # no en file, no bare file: en candidates would get zh-CN
    root = deployment({"rules/05-vocabulary.yaml": VOCAB, "rules/10-rules.yaml": RULES.replace("locale: en", "locale: zh-CN"),
                       **only_zh})
    result = run_cli(["validate"], cwd=root)
    found = [ln for ln in result.output.splitlines() if "[template-locale-unreached]" in ln]
    assert len(found) == 2, result.output                       # both rules use any/t
    assert found[0].startswith("rules/10-rules.yaml:7:") and ": warning:" in found[0]
    assert 'rule "tech"' in found[0] and "any/t has no file for locale en" in found[0]
    assert "t.zh-CN.j2" in found[0]
    with_bare = deployment({"rules/05-vocabulary.yaml": VOCAB, "rules/10-rules.yaml": RULES,
                            **only_zh, "templates/any/t.j2": TEMPLATE})
    assert "template-locale-unreached" not in run_cli(["validate"], cwd=with_bare).output
