"""Template SMS: sms_code / sms_params in template headers, checked at validate time, built for sending."""
from __future__ import annotations

import pytest

from engine.config.deployment import load_deployment
from engine.render.sms import template_params

CONFIG = """\
channels:
  email: {transport: outbox}
  sms: {transport: aliyun-sms, access_key_id: "${AK}", access_key_secret: "${AKS}", sign_name: 示例科技}
"""
RULES = """\
version: 1
rules:
  - id: r
    match: {decision: reject}
    template: reject/generic
    channels: [sms, email]
"""
BODY = """
{% block subject %}面试结果{% endblock %}
{% block sms %}{{ candidate.name }}您好，很遗憾本次未能通过。{% endblock %}
{% block email %}{{ candidate.name }}您好{% endblock %}
"""


def _diags(deployment, monkeypatch, header: str, config: str = CONFIG):
    root = deployment({"herald.yaml": config, "rules/10.yaml": RULES,
                       "templates/reject/generic.j2": header + BODY})
    monkeypatch.chdir(root)
    monkeypatch.setenv("AK", "id")
    monkeypatch.setenv("AKS", "secret")
    return [(d.file, d.line, d.code, d.message) for d in load_deployment().diagnostics if d.is_error]


@pytest.mark.parametrize("header,message", [
    ("{# herald: decisions=[reject] sms_code=SMS_123 sms_params={name: candidate.name} #}", None),
    ("{# herald: decisions=[reject] #}", "needs sms_code=SMS_"),
    ("{# herald: decisions=[reject] sms_code=TPL_1 #}", "is not an Aliyun TemplateCode"),
    ("{# herald: decisions=[reject] sms_code=SMS_1 sms_params={name: candidate.nmae} #}",
     '"candidate.nmae" is not an outcome field (did you mean "candidate.name"?)'),
    ("{# herald: decisions=[reject] sms_code=SMS_1 sms_params=[candidate.name] #}", "sms_params must be a mapping"),
    ("{# herald: decisions=[reject] sms_code=SMS_1 sms_params={mail: candidate.email} #}", "contains a link"),
    ("{# herald: decisions=[reject] sms_code=SMS_1 sms_params={tel: candidate.phone} #}", "contains a mobile number"),
])
def test_sms_header_checks(deployment, monkeypatch, header, message):
    diags = _diags(deployment, monkeypatch, header)
    if message is None:
        assert diags == []
    else:
        assert [(f, line, code) for f, line, code, _ in diags] == [("templates/reject/generic.j2", 1, "sms-template")]
        assert message in diags[0][3]


def test_channel_template_code_serves_when_header_has_none(deployment, monkeypatch):
    config = CONFIG.replace("sign_name: 示例科技}", "sign_name: 示例科技, template_code: SMS_9}")
    assert _diags(deployment, monkeypatch, "{# herald: decisions=[reject] #}", config) == []


def test_outbox_sms_needs_no_code(deployment, monkeypatch):
    config = "channels:\n  email: {transport: outbox}\n  sms: {transport: outbox}\n"
    assert _diags(deployment, monkeypatch, "{# herald: decisions=[reject] #}", config) == []


def test_template_params_from_outcome():
    outcome = {"candidate": {"name": "张伟"}, "feedback": {"strengths": ["逻辑", "沟通"]}}
    assert template_params({"name": "candidate.name", "s": "feedback.strengths", "job": "position.title"},
                           outcome) == {"name": "张伟", "s": "逻辑、沟通", "job": ""}
