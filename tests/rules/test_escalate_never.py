"""`escalate_after: never` switches an inherited escalation off, so `validate --strict` passes a one-channel rule."""
from __future__ import annotations

import textwrap

from engine.config.deployment import load_deployment

TEMPLATE = textwrap.dedent("""\
    {# herald: decisions=[reject, pass] #}
    {% block subject %}Result{% endblock %}
    {% block sms %}Hi {{ candidate.name }}{% endblock %}
    {% block email %}Hi {{ candidate.name }}{% endblock %}
    """)

RULES = textwrap.dedent("""\
    version: 1
    defaults:
      channels: [email, sms]
      timing: {escalate_after: 4h}
    rules:
      - id: two-channels
        match: {decision: reject}
        template: any/generic
      - id: sms-only
        match: {decision: pass}
        template: any/generic
        channels: [sms]
        timing: {escalate_after: never}
    """)


def test_never_switches_an_inherited_escalation_off(run_cli, deployment) -> None:
    root = deployment({"rules/10.yaml": RULES, "templates/any/generic.j2": TEMPLATE})
    result = run_cli(["validate", "--strict"], cwd=root)
    assert result.exit_code == 0, result.stdout
    rules = {r.id: r for r in load_deployment([str(root)]).ruleset.rules}
    assert rules["sms-only"].timing.escalate_after is None
    assert rules["two-channels"].timing.escalate_after.total_seconds() == 4 * 3600


def test_other_words_are_still_refused_with_the_hint(run_cli, deployment) -> None:
    root = deployment({"rules/10.yaml": RULES.replace("escalate_after: never", "escalate_after: nevr"),
                       "templates/any/generic.j2": TEMPLATE})
    result = run_cli(["validate"], cwd=root)
    assert result.exit_code == 1
    assert 'escalate_after: "nevr" is not a duration' in result.stdout and "never" in result.stdout
