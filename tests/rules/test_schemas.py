"""The shipped JSON Schemas, and the example deployment checked against them.

- each schema is a valid draft 2020-12 schema, documented (every property has a description and
  examples, for editor help) and closed (additionalProperties: false) where it should be;
- every rule file in rules/ and examples/herald.example.yaml validate;
- examples/outcomes.jsonl: the good lines validate, the 5 broken ones at the end do not, and the
  file is what examples/make_outcomes.py generates;
- small invalid rule files and configs are rejected, each for the reason the table names;
- the deployment is consistent: templates exist per rule, declare the rule's decisions, and have a
  block for every channel the rule sends on; rule test cases are well-formed.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
RULE_FILES = sorted((ROOT / "rules").glob("*.yaml"))
RULE_TEST_FILES = sorted((ROOT / "rules" / "tests").glob("*.yaml"))
OUTCOMES = ROOT / "examples" / "outcomes.jsonl"
EXAMPLE_CONFIG = ROOT / "examples" / "herald.example.yaml"
BROKEN_LINES = 5
CHANNEL_BLOCK = {"dingtalk": "dingtalk", "sms": "sms", "email": "email", "webhook": "webhook"}
CHANNEL_ADDRESS = {"dingtalk": "dingtalk_userid", "sms": "phone", "email": "email"}


def load_schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(name: str, instance) -> list[str]:
    return [e.message for e in validator(name).iter_errors(instance)]


# ------------------------------------------------------------------ the schemas themselves

@pytest.mark.parametrize("name", ["rules", "config", "outcome"])
def test_schema_is_valid_draft_2020_12(name):
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def _subschemas(node, path="#"):
    """Every schema object below node (properties, $defs, items, anyOf/allOf/if/then, ...)."""
    if not isinstance(node, dict):
        return
    yield path, node
    for key in ("properties", "$defs", "patternProperties"):
        for name, sub in node.get(key, {}).items():
            yield from _subschemas(sub, f"{path}/{key}/{name}")
    for key in ("items", "additionalProperties", "if", "then", "else", "not", "unevaluatedProperties"):
        if isinstance(node.get(key), dict):
            yield from _subschemas(node[key], f"{path}/{key}")
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for i, sub in enumerate(node.get(key, [])):
            yield from _subschemas(sub, f"{path}/{key}/{i}")


def _properties(schema):
    """(path, schema) for every named property and every $defs entry, however deep."""
    for path, node in _subschemas(schema):
        for key in ("properties", "$defs"):
            for name, sub in node.get(key, {}).items():
                yield f"{path}/{key}/{name}", sub


@pytest.mark.parametrize("name", ["rules", "config", "outcome"])
def test_every_property_has_description_and_examples(name):
    missing = [path for path, sub in _properties(load_schema(name))
               if not sub.get("description") or not isinstance(sub.get("examples"), list) or not sub["examples"]]
    assert missing == []


@pytest.mark.parametrize("name", ["rules", "config"])
def test_property_examples_are_valid(name):
    """Each example validates against its own property schema (what an editor would suggest works)."""
    schema = load_schema(name)
    bad = []
    for path, sub in _properties(schema):
        local = dict(sub, **{"$defs": schema.get("$defs", {})})
        v = Draft202012Validator(local)
        for example in sub.get("examples", []):
            if path.endswith("/transport") and "/allOf/" in path:
                continue  # the const inside one transport branch: its example is that branch's own
            if not v.is_valid(example):
                bad.append((path, example))
    assert bad == []


@pytest.mark.parametrize("name", ["rules", "config"])
def test_objects_are_closed(name):
    """additionalProperties: false everywhere, except match (field paths), maps of named things and
    the channel, whose transport branches are each closed."""
    open_ok = {"#/$defs/rule/properties/match", "#/$defs/channel"}
    loose = []
    for path, node in _subschemas(load_schema(name)):
        if "properties" not in node or path in open_ok or "/if" in path:
            continue
        if node.get("additionalProperties") is not False:
            loose.append(path)
    assert loose == []
    if name == "config":
        branches = load_schema("config")["$defs"]["channel"]["allOf"]
        assert len(branches) == 6
        assert all(b["then"]["additionalProperties"] is False for b in branches)
        assert all("timeout" in b["then"]["properties"] for b in branches)


def test_secret_fields_say_use_env():
    schema = load_schema("config")
    secret_names = {"password", "username", "app_key", "app_secret", "access_token", "secret",
                    "access_key_id", "access_key_secret", "token", "hmac_secret"}
    seen = 0
    for path, sub in _properties(schema):
        if path.rsplit("/", 1)[-1] in secret_names:
            seen += 1
            assert '"${ENV_VAR}"' in sub["description"] and "never the secret itself" in sub["description"], path
            assert all(re.fullmatch(r"\$\{[A-Z0-9_]+\}", e) for e in sub["examples"]), path
    assert seen >= 12


# ------------------------------------------------------------------ the deployment validates

def test_there_are_rule_files():
    assert len(RULE_FILES) >= 6


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_validates(path):
    text = path.read_text("utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/rules.schema.json\n")
    assert errors("rules", yaml.safe_load(text)) == []


def test_example_config_validates():
    text = EXAMPLE_CONFIG.read_text("utf-8")
    assert text.startswith("# yaml-language-server: $schema=../schemas/config.schema.json\n")
    config = yaml.safe_load(text)
    assert errors("config", config) == []
    transports = {c["transport"] for c in config["channels"].values()}
    assert transports == {"outbox", "smtp", "dingtalk-work-notice", "dingtalk-robot", "aliyun-sms", "webhook"}
    assert {"dingtalk", "sms", "email", "webhook"} <= set(config["channels"])


def test_empty_config_is_valid():
    """herald.yaml is optional: every section has a default."""
    assert errors("config", {}) == []


def _outcome_lines():
    return OUTCOMES.read_text("utf-8").splitlines()


def test_outcomes_good_lines_validate():
    lines = _outcome_lines()
    assert len(lines) == 240 + BROKEN_LINES
    bad = [(i + 1, errors("outcome", json.loads(line))) for i, line in enumerate(lines[:-BROKEN_LINES])]
    assert [b for b in bad if b[1]] == []


def test_outcomes_broken_lines_are_refused():
    for line in _outcome_lines()[-BROKEN_LINES:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        assert errors("outcome", record), line


def test_outcomes_mix():
    records = [json.loads(line) for line in _outcome_lines()[:-BROKEN_LINES]]
    ids = [r["id"] for r in records]
    assert len(ids) - len(set(ids)) >= 3, "a few ATS re-sends of an earlier id"
    assert {r["decision"] for r in records} == {"pass", "reject", "offer", "hold"}
    assert {r["candidate"]["locale"] for r in records} == {"zh-CN", "en", "en-US"}
    assert any(r.get("approved") is False for r in records)
    assert any("phone" not in r["candidate"] for r in records)
    assert any("dingtalk_userid" not in r["candidate"] for r in records)
    assert all(r["occurred_at"].startswith("2026-11-") and r["occurred_at"].endswith("+08:00") for r in records)


def test_outcomes_file_is_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("make_outcomes", ROOT / "examples" / "make_outcomes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate() == _outcome_lines()


# ------------------------------------------------------------------ what must be rejected

def _rules(**rule):
    base = {"id": "r1", "match": {"decision": "reject"}, "template": "reject/generic"}
    base.update(rule)
    return {"version": 1, "rules": [base]}


RULES_INVALID = [
    ("no version", {"rules": []}, "'version' is a required property"),
    ("version 2", {"version": 2, "rules": []}, '1 was expected'),
    ("version as a string", {"version": "1"}, '1 was expected'),
    ("unknown top-level key", {"version": 1, "rule": []}, "'rule' was unexpected"),
    ("rules not a list", {"version": 1, "rules": {"id": "x"}}, "{'id': 'x'} is not of type 'array'"),
    ("rule without id", {"version": 1, "rules": [{"template": "reject/generic"}]}, "'id' is a required property"),
    ("empty id", _rules(id=""), "'' should be non-empty"),
    ("unknown rule key", _rules(templates="reject/generic"), "'templates' was unexpected"),
    ("match value an object", _rules(match={"decision": {"eq": "reject"}}), "{'eq': 'reject'} is not valid under any of the given schemas"),
    ("match list holding a list", _rules(match={"role": [["backend"]]}), "[['backend']] is not valid under any of the given schemas"),
    ("match empty list", _rules(match={"role": []}), '[] is not valid under any of the given schemas'),
    ("match not an object", _rules(match="decision == reject"), "'decision == reject' is not of type 'object'"),
    ("when not a string", _rules(when=True), "True is not of type 'string'"),
    ("priority not an integer", _rules(priority=1.5), "1.5 is not of type 'integer'"),
    ("enabled not a boolean", _rules(enabled="yes"), "'yes' is not of type 'boolean'"),
    ("channels empty", _rules(channels=[]), '[] should be non-empty'),
    ("channels a string", _rules(channels="email"), "'email' is not of type 'array'"),
    ("channel twice", _rules(channels=["email", "email"]), "['email', 'email'] has non-unique elements"),
    ("variant without template", _rules(variants=[{"weight": 1}]), "'template' is a required property"),
    ("variant weight zero", _rules(variants=[{"template": "a", "weight": 0}]), '0 is less than or equal to the minimum of 0'),
    ("variant unknown key", _rules(variants=[{"template": "a", "share": 50}]), "'share' was unexpected"),
    ("timing unknown key", _rules(timing={"delay": "2h", "wait": "1h"}), "'wait' was unexpected"),
    ("duration a number", _rules(timing={"delay": 30}), "30 is not of type 'string'"),
    ("defaults unknown key", {"version": 1, "defaults": {"channel": ["email"]}}, "'channel' was unexpected"),
    ("window day misspelt", {"version": 1, "windows": {"w": {"days": ["monday"], "hours": "09:00-18:00"}}}, "'monday' is not one of"),
    ("window without hours", {"version": 1, "windows": {"w": {"days": ["mon"]}}}, "'hours' is a required property"),
    ("window hours a number (unquoted 18:00 in YAML 1.1)", {"version": 1, "windows": {"w": {"days": ["mon"], "hours": 1080}}},
     '1080 is not valid under any of the given schemas'),
    ("window unknown key", {"version": 1, "windows": {"w": {"days": ["mon"], "hours": "09:00-18:00", "tz": "UTC"}}}, "'tz' was unexpected"),
]


@pytest.mark.parametrize("doc,reason", [(d, r) for _, d, r in RULES_INVALID], ids=[n for n, _, _ in RULES_INVALID])
def test_rule_file_rejected(doc, reason):
    found = errors("rules", doc)
    assert any(reason in message for message in found), found


RULES_VALID = [
    ("only version", {"version": 1}),
    ("windows only", {"version": 1, "windows": {"w": {"days": ["sat", "sun"], "hours": ["10:00-12:00", "19:00-21:00"]}}}),
    ("match scalars of every kind", _rules(match={"decision": "reject", "score": 60, "approved": True, "reason": None})),
    ("match on any field path", _rules(match={"candidate.locale": ["en", "en-US"], "attributes.level": "P6"})),
    ("variants instead of template", {"version": 1, "rules": [{"id": "v", "match": {"decision": "reject"},
                                      "variants": [{"template": "a"}, {"template": "b", "weight": 2.5}]}]}),
    ("full timing", _rules(timing={"delay": "1h30m", "window": "business-hours", "deadline": "24h", "escalate_after": "4h"})),
]


@pytest.mark.parametrize("doc", [d for _, d in RULES_VALID], ids=[n for n, _ in RULES_VALID])
def test_rule_file_accepted(doc):
    assert errors("rules", doc) == []


def _channel(**settings):
    return {"channels": {"c": settings}}


CONFIG_INVALID = [
    ("unknown config key", {"rule": "rules"}, "'rule' was unexpected"),
    ("rules an empty list", {"rules": []}, '[] is not valid under any of the given schemas'),
    ("rules a number", {"rules": 1}, '1 is not valid under any of the given schemas'),
    ("store unknown key", {"store": {"file": "herald.db"}}, "'file' was unexpected"),
    ("server port a string", {"server": {"port": "8025"}}, "'8025' is not of type 'integer'"),
    ("server port out of range", {"server": {"port": 70000}}, '70000 is greater than the maximum of 65535'),
    ("server unknown key", {"server": {"listen": "0.0.0.0"}}, "'listen' was unexpected"),
    ("auth unknown key", {"server": {"auth": {"password": "x"}}}, "'password' was unexpected"),
    ("dispatch workers zero", {"dispatch": {"workers": 0}}, '0 is less than the minimum of 1'),
    ("dispatch backoff a number", {"dispatch": {"backoff_base": 30}}, "30 is not of type 'string'"),
    ("company unknown key", {"company": {"name": "示例科技", "phone": "1"}}, "'phone' was unexpected"),
    ("window in config misspelt", {"windows": {"w": {"days": ["Mon"], "hours": "09:00-18:00"}}}, "'Mon' is not one of"),
    ("channel without transport", _channel(host="smtp.example.com"), "'transport' is a required property"),
    ("unknown transport", _channel(transport="carrier-pigeon"), "'carrier-pigeon' is not one of"),
    ("smtp without from", _channel(transport="smtp", host="smtp.example.com"), "'from' is a required property"),
    ("smtp unknown key", {"channels": {"email": {"transport": "smtp", "from": "hr@example.com", "hostname": "x"}}},
     "'hostname' was unexpected"),
    ("smtp port a string", _channel(transport="smtp", **{"from": "hr@example.com"}, port="465"), "'465' is not of type 'integer'"),
    ("smtp ssl a string", _channel(transport="smtp", **{"from": "hr@example.com"}, ssl="yes"), "'yes' is not of type 'boolean'"),
    ("smtp setting on outbox", _channel(transport="outbox", host="smtp.example.com"), "'host' was unexpected"),
    ("webhook without url", _channel(transport="webhook", secret="${S}"), "'url' is a required property"),
    ("webhook header not a string", _channel(transport="webhook", url="https://x", headers={"X-N": 1}), "1 is not of type 'string'"),
    ("timeout a duration string", _channel(transport="webhook", url="https://x", timeout="10s"), "'10s' is not of type 'number'"),
    ("timeout zero", _channel(transport="outbox", timeout=0), '0 is less than or equal to the minimum of 0'),
    ("work notice without agent_id", _channel(transport="dingtalk-work-notice", app_key="${K}", app_secret="${S}"),
     "'agent_id' is a required property"),
    ("robot setting on work notice", _channel(transport="dingtalk-work-notice", app_key="${K}", app_secret="${S}",
                                              agent_id=1, access_token="${T}"), "'access_token' was unexpected"),
    ("robot without access_token", _channel(transport="dingtalk-robot", secret="${S}"), "'access_token' is a required property"),
    ("sms without sign_name", _channel(transport="aliyun-sms", access_key_id="${I}", access_key_secret="${S}",
                                       template_code="SMS_1"), "'sign_name' is a required property"),
    ("smtp list_unsubscribe a boolean", _channel(transport="smtp", **{"from": "hr@example.com"}, list_unsubscribe=True),
     "True is not of type 'string'"),
    ("sms unknown key", _channel(transport="aliyun-sms", access_key_id="${I}", access_key_secret="${S}",
                                 sign_name="示例科技", template_code="SMS_1", region="cn-hangzhou"), "'region' was unexpected"),
]


@pytest.mark.parametrize("doc,reason", [(d, r) for _, d, r in CONFIG_INVALID], ids=[n for n, _, _ in CONFIG_INVALID])
def test_config_rejected(doc, reason):
    found = errors("config", doc)
    assert any(reason in message for message in found), found


CONFIG_VALID = [
    ("rules a list", {"rules": ["rules", "more/urgent.yaml"]}),
    ("outbox channels", {"channels": {"dingtalk": {"transport": "outbox"}, "sms": {"transport": "outbox", "directory": "o"}}}),
    ("smtp minimal", _channel(transport="smtp", **{"from": "hr@example.com"})),
    ("webhook with headers and timeout", _channel(transport="webhook", url="https://x", headers={"A": "b"}, timeout=2.5)),
    ("work notice agent_id from env", _channel(transport="dingtalk-work-notice", app_key="${K}", app_secret="${S}",
                                               agent_id="${DINGTALK_AGENT_ID}")),
    ("robot", _channel(transport="dingtalk-robot", access_token="${T}", secret="${S}", timeout=5)),
    ("smtp with a private CA", _channel(transport="smtp", **{"from": "hr@example.com"}, verify=True, ca_file="/etc/ca.pem",
                                        local_hostname="herald.example.com", allow_insecure_auth=False)),
    ("sms without template_code (messages name their own)", _channel(transport="aliyun-sms", access_key_id="${I}",
                                                                     access_key_secret="${S}", sign_name="示例科技")),
]


@pytest.mark.parametrize("doc", [d for _, d in CONFIG_VALID], ids=[n for n, _ in CONFIG_VALID])
def test_config_accepted(doc):
    assert errors("config", doc) == []


def test_rule_file_errors_name_the_field():
    """The schema's own message points at the offending key (the semantic checker adds line numbers)."""
    errs = list(validator("rules").iter_errors(_rules(templates="x")))
    assert any("templates" in e.message for e in errs)
    errs = list(validator("config").iter_errors(_channel(transport="smtp")))
    assert any("'from' is a required property" in e.message for e in errs)


# ------------------------------------------------------------------ the deployment is consistent

def _all_rules():
    for path in RULE_FILES:
        doc = yaml.safe_load(path.read_text("utf-8"))
        defaults = doc.get("defaults") or {}
        for rule in doc.get("rules") or []:
            yield path, rule, defaults


def _template_header(path: Path) -> list[str]:
    first = path.read_text("utf-8").splitlines()[0]
    m = re.fullmatch(r"\{# herald: decisions=\[([a-z, ]+)\]( sms_code=SMS_\d+ sms_params=\{.*\})? #\}", first)
    assert m, f"{path}: first line must be the herald header, got {first!r}"
    return [d.strip() for d in m.group(1).split(",")]


def _blocks(path: Path) -> set[str]:
    return set(re.findall(r"\{%-?\s*block\s+(\w+)", path.read_text("utf-8")))


def test_rule_ids_unique_and_enough():
    ids = [rule["id"] for _, rule, _ in _all_rules()]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 16


def test_every_template_has_header_and_fallback():
    templates = sorted((ROOT / "templates").rglob("*.j2"))
    assert templates
    for path in templates:
        _template_header(path)
        if path.name.endswith(".zh-CN.j2"):
            assert path.with_name(path.name.replace(".zh-CN.j2", ".j2")).exists(), f"{path}: no fallback"


@pytest.mark.parametrize("rule,defaults", [pytest.param(r, d, id=r["id"]) for _, r, d in _all_rules()])
def test_rule_templates_fit(rule, defaults):
    names = [v["template"] for v in rule.get("variants", [])] or [rule["template"]]
    decisions = rule["match"]["decision"]
    decisions = decisions if isinstance(decisions, list) else [decisions]
    channels = rule.get("channels", defaults.get("channels"))
    assert channels, f"{rule['id']}: no channels"
    for name in names:
        assert name.split("/")[0] in decisions, f"{rule['id']}: template {name} is in another decision's folder"
        for filename in (f"{name}.zh-CN.j2", f"{name}.j2"):
            tpl = ROOT / "templates" / filename
            assert tpl.exists(), f"{rule['id']}: {filename} missing"
            assert set(decisions) <= set(_template_header(tpl)), f"{filename} does not declare {decisions}"
            blocks = _blocks(tpl)
            assert "subject" in blocks
            for channel in channels:
                assert CHANNEL_BLOCK[channel] in blocks, f"{filename}: no {channel} block for {rule['id']}"


def test_rule_windows_exist():
    windows = {}
    for path in RULE_FILES:
        for name in (yaml.safe_load(path.read_text("utf-8")).get("windows") or {}):
            assert name not in windows, f"window {name} defined twice"
            windows[name] = path
    for _path, rule, defaults in _all_rules():
        timing = dict(defaults.get("timing") or {}, **(rule.get("timing") or {}))
        if "window" in timing:
            assert timing["window"] in windows, f"{rule['id']}: unknown window {timing['window']}"


NEUTRAL_CANDIDATE = {"name": "测试候选人", "email": "test@example.com", "phone": "+8613800000000",
                     "dingtalk_userid": "t01", "locale": "zh-CN", "timezone": "Asia/Shanghai"}


def test_rule_test_cases_are_well_formed():
    rule_ids = {rule["id"] for _, rule, _ in _all_rules()}
    covered = set()
    count = 0
    for path in RULE_TEST_FILES:
        cases = yaml.safe_load(path.read_text("utf-8"))
        assert isinstance(cases, list), path
        for case in cases:
            count += 1
            assert set(case) <= {"name", "now", "outcome", "expect"}, case.get("name")
            assert case["name"] and isinstance(case["outcome"], dict)
            assert set(case["expect"]) <= {"rule", "template", "channels", "status", "send_at"}, case["name"]
            if "send_at" in case["expect"]:
                assert "now" in case, f"{case['name']}: send_at needs a fixed now"
            outcome = copy.deepcopy(case["outcome"])
            outcome.setdefault("id", "test-case")
            outcome.setdefault("candidate", NEUTRAL_CANDIDATE)
            assert errors("outcome", outcome) == [], case["name"]
            rule = case["expect"].get("rule")
            if rule:
                assert rule in rule_ids, f"{case['name']}: unknown rule {rule}"
                covered.add(rule)
            for channel in case["expect"].get("channels", []):
                address = CHANNEL_ADDRESS.get(channel)
                assert address is None or address in outcome["candidate"], case["name"]
    assert count >= 20
    assert rule_ids - covered == set(), "every rule has a test case"
