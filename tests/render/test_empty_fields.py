"""template-empty-field: validate renders every template against a minimal outcome (required fields only) and
warns, located, when an optional field prints as empty text in a subject, SMS or title; the shipped templates
give every such field a fallback."""
from __future__ import annotations

import textwrap

RULES = textwrap.dedent("""\
    version: 1
    defaults: {locale: en, timezone: UTC, channels: [email, sms], timing: {delay: 0s}}
    rules:
      - id: r
        match: {decision: reject}
        template: any/t
    """)
BLANK = textwrap.dedent("""\
    {# herald: decisions=[reject] #}
    {% block subject %}About {{ position.title }} at {{ company.name }}{% endblock %}
    {% block email %}Hello {{ candidate.name }}, {{ position.title }}{% endblock %}
    {% block sms %}Hello {{ candidate.name }}: {{ next_step.stage }}{{ feedback.strengths | join(", ") }}{% endblock %}
    """)
FALLBACK = textwrap.dedent("""\
    {# herald: decisions=[reject] #}
    {% block subject %}About {{ position.title or "your application" }}{% endblock %}
    {% block email %}Hello {{ candidate.name }}, {{ position.title }}{% endblock %}
    {% block sms %}Hello {{ candidate.name }}{% if position and position.title %} ({{ position.title }}){% endif %}\
    {{ position.department | default(" of our team") }}{% endblock %}
    """)


def _warnings(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if "[template-empty-field]" in ln]


def test_validate_warns_where_an_optional_field_prints_as_nothing(run_cli, deployment):
    root = deployment({"rules/10.yaml": RULES, "templates/any/t.j2": BLANK})
    result = run_cli(["validate"], cwd=root)
    found = _warnings(result.output)
    assert len(found) == 3, result.output
    subject = found[0]
    assert subject.startswith("templates/any/t.j2:2:") and ": warning:" in subject
    assert "block subject prints position.title as empty text" in subject
    assert all(w.startswith("templates/any/t.j2:4:") for w in found[1:])
    assert {w.split(" prints ")[1].split(" ")[0] for w in found[1:]} == {"next_step.stage", "feedback.strengths"}
    assert all("block sms" in w for w in found[1:])
    assert not [w for w in found if "block email " in w]             # only subject, SMS and title are checked
    assert result.exit_code == 0                                      # a warning; --strict makes it fail
    assert run_cli(["validate", "--strict"], cwd=root).exit_code != 0


def test_a_fallback_or_a_condition_is_enough(run_cli, deployment):
    root = deployment({"rules/10.yaml": RULES, "templates/any/t.j2": FALLBACK})
    result = run_cli(["validate"], cwd=root)
    assert _warnings(result.output) == [], result.output


def test_the_shipped_templates_print_no_empty_field(run_cli):
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[2]
    result = run_cli(["validate"], cwd=root)
    assert result.exit_code == 0, result.output
    assert _warnings(result.output) == []


def test_an_sms_variable_from_an_optional_field_needs_a_default(run_cli, deployment):
    header = "{# herald: decisions=[reject] sms_code=SMS_1 sms_params={name: candidate.name, job: JOB} #}\n"
    body = "{% block subject %}Result{% endblock %}{% block email %}Hi{% endblock %}{% block sms %}Hi{% endblock %}\n"
    bare = deployment({"rules/10.yaml": RULES, "templates/any/t.j2": header.replace("JOB", "position.title") + body})
    found = _warnings(run_cli(["validate"], cwd=bare).output)
    assert len(found) == 1 and found[0].startswith("templates/any/t.j2:1:")
    assert "sms_params job takes position.title" in found[0] and "default" in found[0]
    fixed = deployment({"rules/10.yaml": RULES, "templates/any/t.j2": header.replace(
        "JOB", '{from: position.title, default: "the role"}') + body})
    assert _warnings(run_cli(["validate"], cwd=fixed).output) == []


def test_the_default_stands_in_for_a_missing_field():
    from engine.render.sms import template_params

    params = {"name": "candidate.name", "job": {"from": "position.title", "default": "我司"}}
    assert template_params(params, {"candidate": {"name": "张伟"}}) == {"name": "张伟", "job": "我司"}
    assert template_params(params, {"candidate": {"name": "张伟"}, "position": {"title": "后端"}})["job"] == "后端"
