"""sources: in herald.yaml: paths, kinds, secrets from the environment, mappings, vocabulary; located errors."""
from __future__ import annotations

import pytest

from engine.config.deployment import load_deployment
from engine.config.settings import load_config
from engine.sources.paths import MISSING, PathError, get_path, parse_path
from sources_support import GREENHOUSE, source_deployment


def test_bracket_paths_parse_and_read():
    assert parse_path("application.jobs[0].name") == ("application", "jobs", 0, "name")
    assert parse_path("a[1][-1]") == ("a", 1, -1)
    data = {"application": {"jobs": [{"name": "Backend Engineer"}]}}
    assert get_path(data, parse_path("application.jobs[0].name")) == "Backend Engineer"
    assert get_path(data, parse_path("application.jobs[1].name")) is MISSING
    assert get_path(data, parse_path("application.jobs.name")) is MISSING
    assert get_path({"a": "text"}, parse_path("a[0]")) is MISSING
    for bad in ("", "a..b", "a.", ".a", "[0]", "a[x]", "a[0", "a]"):
        with pytest.raises(PathError):
            parse_path(bad)


def _diags(tmp_path, sources: str, env: dict, approve: str = "auto"):
    source_deployment(tmp_path, sources, approve)
    cfg, diags = load_config(tmp_path / "herald.yaml", env=env)
    return cfg, diags


def test_a_good_source_loads_with_its_secret_from_the_environment(tmp_path):
    cfg, diags = _diags(tmp_path, GREENHOUSE, {"GH_SECRET": "s3cret"}, approve="manual")
    assert [d for d in diags if d.is_error] == []
    src = cfg.sources["greenhouse"]
    assert src.kind == "greenhouse" and src.secret == "s3cret" and src.approve == "manual"
    assert {fm.field for fm in src.maps} == {"stage", "role", "reason"}
    role = next(fm for fm in src.maps if fm.field == "role")
    assert role.path == ("application", "jobs", 0, "name") and role.has_default and role.default == "other"
    assert "s3cret" not in repr(src)


def test_unset_secret_unknown_kind_field_and_bad_path_are_located_errors(tmp_path):
    sources = """sources:
  gh:
    kind: greenhose
    secret: "${NOT_SET_ANYWHERE}"
    map:
      stag: {from: application.current_stage.name}
      role: {from: "application.jobs[0.name"}
      decision: {from: action, values: {reject_candidate: rejected}}
  plain:
    kind: ashby
    secret: literal-in-the-file
"""
    _, diags = _diags(tmp_path, sources, {})
    text = "\n".join(d.format() for d in diags)
    assert 'unknown kind "greenhose" (did you mean "greenhouse"?)' in text
    assert "environment variable NOT_SET_ANYWHERE is not set" in text
    assert "an outcome has no field 'stag' (did you mean \"stage\"?)" in text
    assert "map.role: from:" in text and "[bad-path]" in text
    assert "'rejected' is not a decision (did you mean \"reject\"?)" in text
    assert '"secret" is written in the file' in text
    lines = {d.code: d.line for d in diags}
    assert lines["unknown-kind"] == lines["unset-env"] - 1  # each error points at its own line
    assert all(d.file.endswith("herald.yaml") and d.line > 0 for d in diags)


def test_schema_names_unknown_keys_of_a_source(tmp_path):
    sources = """sources:
  gh:
    kind: greenhouse
    secret: "${GH_SECRET}"
    aprove: manual
"""
    _, diags = _diags(tmp_path, sources, {"GH_SECRET": "x"})
    assert any("aprove" in d.message for d in diags if d.is_error)


def test_generic_needs_its_header_application_and_every_field(tmp_path):
    sources = """sources:
  hook:
    kind: generic
    secret: "${GH_SECRET}"
    map:
      stage: {from: stage}
"""
    _, diags = _diags(tmp_path, sources, {"GH_SECRET": "x"})
    text = "\n".join(d.message for d in diags)
    assert "needs `signature_header`" in text and "needs `application_id`" in text
    assert "`decision` is missing" in text and "`candidate.name` is missing" in text


def test_mapped_values_are_checked_against_the_values_the_rules_match_on(tmp_path, monkeypatch):
    sources = GREENHOUSE.replace("second_round", "secnd_round")
    source_deployment(tmp_path, sources)
    monkeypatch.setenv("GH_SECRET", "x")
    dep = load_deployment([str(tmp_path)])
    found = [d for d in dep.diagnostics if d.code == "unknown-value"]
    assert [d.severity for d in found] == ["warning", "warning"]  # secnd_round, and the role default "other"
    text = "\n".join(d.message for d in found)
    assert "'secnd_round' is not in the values the rules match on (did you mean \"second_round\"?)" in text
    assert "map.role: 'other'" in text


VOCABULARY = """
vocabulary:
  role: [backend, frontend]
  stage: [first_round, second_round, final]
  reason: [lacks_project_experience, skills_gap]
  locale: [zh-CN, en]
  attributes:
    source: [campus, referral]
"""
VOCAB_SOURCES = """sources:
  gh:
    kind: greenhouse
    secret: "${GH_SECRET}"
    map:
      stage:  {from: application.current_stage.name, values: {"Phone Screen": first_round, "Onsite": secnd_round}}
      role:   {from: "application.jobs[0].name", values: {"Backend Engineer": backend}, default: other}
      candidate.locale: {from: application.language, values: {English: en-US, Chinese: zh-CN}}
      attributes.sorce: {from: application.source.public_name}
      attributes.source: {from: application.source.type, values: {Campus: campus, Referral: referal}}
"""


def test_a_declared_vocabulary_makes_mapped_values_outside_it_located_errors(tmp_path, monkeypatch):
    from daemon_support import make_deployment
    from sources_support import RULES

    make_deployment(tmp_path, rules=RULES + VOCABULARY)
    with open(tmp_path / "herald.yaml", "a") as fh:
        fh.write(VOCAB_SOURCES)
    monkeypatch.setenv("GH_SECRET", "x")
    dep = load_deployment([str(tmp_path)])
    assert dep.ruleset is None  # errors: validate fails
    found = sorted((d.line, d.column, d.severity, d.message) for d in dep.diagnostics if d.code == "unknown-value")
    lines = (tmp_path / "herald.yaml").read_text().splitlines()

    def at(text: str, line_has: str) -> tuple[int, int]:
        [n] = [i for i, line in enumerate(lines, 1) if line_has in line]
        return n, lines[n - 1].index(text) + 1

    assert found == [
        (*at("secnd_round", "secnd_round"), "error",
         'source gh: map.stage: stage "secnd_round" is not in the vocabulary (did you mean "second_round"?)'),
        (*at("other", "default: other"), "error", 'source gh: map.role: role "other" is not in the vocabulary'),
        (*at("{from: application.source.public_name}", "attributes.sorce"), "error",
         'source gh: map.attributes.sorce: attributes.sorce is not an attribute in the vocabulary '
         '(did you mean "source"?)'),
        (*at("referal", "referal"), "error", 'source gh: map.attributes.source: attributes.source "referal" is '
                                              'not in the vocabulary (did you mean "referral"?)'),
    ], "en-US is covered by en; every other value is declared"


def test_lever_needs_an_api_key_from_the_environment(tmp_path):
    sources = """sources:
  lever:
    kind: lever
    secret: "${GH_SECRET}"
  lever2:
    kind: lever
    secret: "${GH_SECRET}"
    api_key: "${LEVER_KEY_NOT_SET}"
"""
    cfg, diags = _diags(tmp_path, sources, {"GH_SECRET": "x"})
    text = "\n".join(d.message for d in diags if d.is_error)
    assert "source lever: a lever source needs `api_key`" in text
    assert "source lever2: api_key: environment variable LEVER_KEY_NOT_SET is not set" in text
    assert cfg.sources == {}
    only_second = sources.replace("LEVER_KEY_NOT_SET", "LK").replace('  lever:\n    kind: lever\n    secret: "${GH_SECRET}"\n', "")
    cfg, diags = _diags(tmp_path, only_second, {"GH_SECRET": "x", "LK": "key-1"})
    assert cfg.sources["lever2"].settings["api_key"] == "key-1" and "key-1" not in repr(cfg.sources["lever2"])
