"""Every validation check, table-driven: "this YAML (or template) gives exactly these codes at these line:column".

In the style of Alertmanager's config tests. Each row lays some files over a small valid deployment (BASE)
and lists every diagnostic the whole deployment must then give: (file, line, column, code), or with a
fifth element, the exact message. Nothing else may be reported. The deployment runs on the built-in
config defaults (rules/, templates/, channels dingtalk, sms, email, webhook) unless a row writes
herald.yaml.
"""
from __future__ import annotations

import re
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config.deployment import load_deployment

Y = textwrap.dedent

BASE = {
    "rules/10-main.yaml": Y("""\
        version: 1
        defaults:
          locale: zh-CN
          timezone: Asia/Shanghai
          channels: [dingtalk, email]
          timing: {delay: 30m, window: business-hours, deadline: 24h}
        windows:
          business-hours: {days: [mon, tue, wed, thu, fri], hours: "09:00-18:00", holidays: CN}
        rules:
          - id: reject-tech
            match: {decision: reject, role: backend}
            when: score >= 60
            template: reject/generic
          - id: reject-all
            match: {decision: reject}
            template: reject/generic
            channels: [email, sms]
          - id: pass-all
            match: {decision: pass}
            template: pass/next
        """),
    "templates/reject/generic.j2": Y("""\
        {# herald: decisions=[reject] #}
        {% block subject %}Your interview for {{ position.title or "the role" }}{% endblock %}
        {% block sms %}Hi {{ candidate.name }}, not this time.{% endblock %}
        {% block dingtalk %}Hi {{ candidate.name }}, not this time.{% endblock %}
        {% block email %}Hi {{ candidate.name }}, not this time.{% endblock %}
        """),
    "templates/pass/next.j2": Y("""\
        {# herald: decisions=[pass] #}
        {% block subject %}Next round{% endblock %}
        {% block sms %}Hi {{ candidate.name }}, see you next round.{% endblock %}
        {% block dingtalk %}Hi {{ candidate.name }}, see you next round.{% endblock %}
        {% block email %}Hi {{ candidate.name }}, see you next round.{% endblock %}
        """),
    "templates/offer/standard.j2": Y("""\
        {# herald: decisions=[offer, hold] #}
        {% block subject %}Good news{% endblock %}
        {% block sms %}Hi {{ candidate.name }}, good news.{% endblock %}
        {% block dingtalk %}Hi {{ candidate.name }}, good news.{% endblock %}
        {% block email %}Hi {{ candidate.name }}, good news.{% endblock %}
        """),
}

WARNING_CODES = {"unreachable-rule", "deadline-before-delay", "escalate-single-channel", "literal-secret",
                 "unset-env", "empty-file", "template-locale-mismatch"}

R = "rules/20-x.yaml"           # the file most rows add
M = "rules/10-main.yaml"        # BASE's rule file
T = "templates/offer/standard.j2"
CFG = "herald.yaml"
UNSET = "HERALD_TEST_SURELY_UNSET_VAR"

# the offer template with the subject block replaced (rows on template checks)
OFFER_HEAD = "{# herald: decisions=[offer, hold] #}\n"
OFFER_TAIL = Y("""\
    {% block sms %}Hi{% endblock %}
    {% block dingtalk %}Hi{% endblock %}
    {% block email %}Hi{% endblock %}
    """)
# a valid offer rule's first lines; rows append to it (so line 6 is the first appended line)
OFFER_RULE = Y("""\
    version: 1
    rules:
      - id: offer-a
        template: offer/standard
        channels: [email]
    """)


ROWS = [
    # ----------------------------------------------------------------------------- YAML
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: a
            match: {decision: offer
        """)}, [(R, 5, 1, "yaml-syntax")], id="yaml-syntax-unclosed-flow"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: a
           template: x
        """)}, [(R, 4, 4, "yaml-syntax")], id="yaml-syntax-indent"),
    pytest.param({CFG: "channels: [email\n"}, [(CFG, 2, 1, "yaml-syntax")], id="yaml-syntax-config"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: offer-a
            match: {decision: offer}
            template: offer/standard
            channels: [email]
            template: offer/standard
        """)}, [(R, 7, 5, "duplicate-key", 'key "template" appears twice in one mapping (first at line 5)')],
        id="duplicate-key"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: offer-a
            description: !!binary aGk=
            match: {decision: offer}
            template: offer/standard
            channels: [email]
        """)}, [(R, 4, 18, "yaml-tag"), (R, 4, 18, "bad-type")], id="yaml-tag"),
    pytest.param({R: ""}, [(R, 1, 1, "empty-file")], id="empty-file"),

    # ----------------------------------------------------------------------------- schema
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: offer-a
            match: {decision: offer}
            tempalte: offer/standard
            channels: [email]
        """)}, [(R, 5, 5, "unknown-key", 'unknown key "tempalte" in rule "offer-a" (did you mean "template"?)')],
        id="unknown-key-tempalte"),
    pytest.param({R: "version: 1\ndefualts: {}\nrules: []\n"},
                 [(R, 2, 1, "unknown-key", 'unknown key "defualts" in the file (did you mean "defaults"?)')],
                 id="unknown-key-top-level"),
    pytest.param({CFG: "rulez: rules\n"}, [(CFG, 1, 1, "unknown-key")], id="unknown-key-config"),
    pytest.param({R: Y("""\
        version: 1
        windows:
          w1: {days: [mon], hour: "09:00-12:00"}
        """)}, [(R, 3, 7, "missing-key"), (R, 3, 21, "unknown-key")], id="unknown-key-window"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - match: {decision: offer}
            template: offer/standard
            channels: [email]
        """)}, [(R, 3, 5, "missing-key", 'rules[0] needs "id"')], id="missing-key-id"),
    pytest.param({R: "rules: []\n"}, [(R, 1, 1, "missing-key", 'the file needs "version"')],
                 id="missing-key-version"),
    pytest.param({R: "version: 1\nwindows:\n  w1:\n    hours: \"09:00-12:00\"\n"},
                 [(R, 4, 5, "missing-key")], id="missing-key-window-days"),
    pytest.param({R: OFFER_RULE.replace("channels: [email]", "channels: email") + "    match: {decision: offer}\n"},
                 [(R, 5, 15, "bad-type", 'rule "offer-a" channels must be a list, not "email"')], id="bad-type-channels"),
    pytest.param({R: OFFER_RULE + "    match: {decision: offer}\n    priority: high\n"}, [(R, 7, 15, "bad-type")],
                 id="bad-type-priority"),
    pytest.param({R: "- id: a\n"}, [(R, 1, 1, "bad-type")], id="bad-type-file-is-a-list"),
    pytest.param({R: "version: 2\nrules: []\n"}, [(R, 1, 10, "bad-version", "version must be 1")],
                 id="bad-version"),
    pytest.param({R: 'version: "1"\n'}, [(R, 1, 10, "bad-version")], id="bad-version-string"),
    pytest.param({CFG: Y("""\
        channels:
          email: {transport: smtpp}
          sms: {transport: outbox}
          dingtalk: {transport: outbox}
        """)}, [(CFG, 2, 22, "bad-value")], id="bad-value-transport"),

    # ----------------------------------------------------------------------------- rules across files
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: reject-all
            match: {decision: offer}
            template: offer/standard
            channels: [email]
        """)}, [(R, 3, 5, "duplicate-rule-id", 'rule id "reject-all" is already used at rules/10-main.yaml:14')],
        id="duplicate-rule-id-two-files"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: offer-all
            match: {decision: offer}
            template: offer/standard
            channels: [email]
          - id: offer-all
            match: {decision: hold}
            template: offer/standard
            channels: [email]
        """)}, [(R, 7, 5, "duplicate-rule-id")], id="duplicate-rule-id-one-file"),

    # ----------------------------------------------------------------------------- templates used by rules
    pytest.param({R: OFFER_RULE.replace("offer/standard", "offer/standrd") + "    match: {decision: offer}\n"},
                 [(R, 4, 15, "unknown-template", 'unknown template "offer/standrd" (did you mean "offer/standard"?)')],
                 id="unknown-template"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: vip
            match: {role: ceo}
            template: reject/generic
            channels: [email]
        """)}, [(R, 5, 15, "template-decision")] * 3, id="template-decision-unpinned"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: pass-final
            priority: 1
            match: {decision: pass, stage: final}
            template: reject/generic
            channels: [email]
        """)}, [(R, 6, 15, "template-decision", "template reject/generic does not declare decision pass: "
                                                "a rule that can match pass must not use it")],
        id="template-decision-pass-on-reject-template"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: hold-a
            match: {decision: hold}
            template: reject/generic
            channels: [fax]
        """)}, [(R, 6, 16, "unknown-channel"), (R, 5, 15, "template-decision")],
        id="template-decision-also-when-channels-unknown"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: hold-a
            match: {decision: hold}
            template: reject/generic
        """)}, [(R, 3, 5, "missing-channels"), (R, 5, 15, "template-decision")],
        id="template-decision-also-when-channels-missing"),
    pytest.param({R: OFFER_RULE.replace("[email]", "[email, webhook]") + "    match: {decision: offer}\n"},
                 [(R, 4, 15, "template-missing-block",
                   "template offer/standard has no block webhook for channel webhook (in templates/offer/standard.j2)")],
                 id="template-missing-block-webhook"),
    pytest.param({"templates/reject/generic.j2": Y("""\
        {# herald: decisions=[reject] #}
        {% block subject %}S{% endblock %}
        {% block dingtalk %}D{% endblock %}
        {% block email %}E{% endblock %}
        """)}, [(M, 16, 15, "template-missing-block")], id="template-missing-block-sms"),
    pytest.param({"templates/reject/generic.j2": Y("""\
        {# herald: decisions=[reject] #}
        {% block sms %}S{% endblock %}
        {% block dingtalk %}D{% endblock %}
        {% block email %}E{% endblock %}
        """)}, [(M, 13, 15, "template-missing-block"), (M, 16, 15, "template-missing-block")],
        id="template-missing-block-email-needs-subject"),

    # ----------------------------------------------------------------------------- templates themselves
    pytest.param({T: OFFER_HEAD + "{% block subject %}Hello {{ candidate.nmae }}{% endblock %}\n" + OFFER_TAIL},
                 [(T, 2, 29, "template-variable", 'unknown variable "candidate.nmae" (did you mean "candidate.name"?)')],
                 id="template-variable"),
    pytest.param({T: OFFER_HEAD + Y("""\
        {% block subject %}Hello{% endblock %}
        {% block sms %}Hi {{ candiate.name }} and {{ postion }}{% endblock %}
        {% block dingtalk %}Hi{% endblock %}
        {% block email %}Hi{% endblock %}
        """)}, [(T, 3, 22, "template-variable"), (T, 3, 46, "template-variable")], id="template-variable-roots"),
    pytest.param({T: OFFER_HEAD + Y("""\
        {% block subject %}Hello{% endblock %}
        {% block sms %}{% for s in feedback.strengths %}{{ s }} {{ loop.index }}{% endfor %}{% endblock %}
        {% block dingtalk %}{% set n = candidate.name %}{{ n }} {{ company.name }} {{ links.rating }}{% endblock %}
        {% block email %}{{ attributes.anything.goes }} {{ channel }}{% endblock %}
        """)}, [], id="template-variable-not-flagged-when-bound-or-free"),
    pytest.param({T: OFFER_HEAD + "{% block subject %}Hello {{ candidate.name }{% endblock %}\n" + OFFER_TAIL},
                 [(T, 2, 1, "template-syntax")], id="template-syntax"),
    pytest.param({T: OFFER_HEAD + "{% block subject %}Hello{% endblock %}\n" + OFFER_TAIL + "{% if x %}\n"},
                 [(T, 6, 1, "template-syntax")], id="template-syntax-unclosed-if"),
    pytest.param({T: OFFER_HEAD + Y("""\
        {% block subject %}Hello{% endblock %}
        {% block sms %}Hi{% endblock %}
        {% block dingtalk %}{{ candidate.__class__ }}{% endblock %}
        {% block email %}Hi{% endblock %}
        """)}, [(T, 4, 1, "template-render"), (T, 4, 24, "template-variable")], id="template-render-sandbox"),
    pytest.param({T: OFFER_HEAD + Y("""\
        {% block subject %}Hello{% endblock %}
        {% block sms %}Hi{% endblock %}
        {% block dingtalk %}Hi{% endblock %}
        {% block email %}
        {{ 1 / 0 }}
        {% endblock %}
        """)}, [(T, 6, 1, "template-render")], id="template-render-error-line"),
    pytest.param({T: "{% block subject %}Hello{% endblock %}\n" + OFFER_TAIL},
                 [(T, 1, 1, "template-header",
                   "missing header: the first line must be {# herald: decisions=[...] #}")], id="template-header-missing"),
    pytest.param({T: "{# herald: decisions=[offr] #}\n{% block subject %}Hello{% endblock %}\n" + OFFER_TAIL},
                 [(T, 1, 23, "template-header")], id="template-header-unknown-decision"),
    pytest.param({T: "\n" + OFFER_HEAD + "{% block subject %}Hello{% endblock %}\n" + OFFER_TAIL},
                 [(T, 2, 1, "template-header")], id="template-header-not-first-line"),
    pytest.param({T: "{# herald: description=x #}\n{% block subject %}Hello{% endblock %}\n" + OFFER_TAIL},
                 [(T, 1, 1, "template-header")], id="template-header-no-decisions"),
    pytest.param({"templates/reject/generic.j2": Y("""\
        {% block subject %}S{% endblock %}
        {% block sms %}S{% endblock %}
        {% block dingtalk %}D{% endblock %}
        {% block email %}E{% endblock %}
        """)}, [("templates/reject/generic.j2", 1, 1, "template-header"),
                (M, 13, 15, "template-decision"), (M, 16, 15, "template-decision")],
        id="template-header-missing-on-a-used-template"),
    pytest.param({"templates/offer/standard.en.j2": "{# herald: decisions=[offer] #}\n"
                                                    "{% block subject %}Hello{% endblock %}\n" + OFFER_TAIL},
                 [("templates/offer/standard.en.j2", 1, 1, "template-locale-mismatch")], id="template-locale-mismatch"),

    # ----------------------------------------------------------------------------- channels
    pytest.param({R: OFFER_RULE.replace("[email]", "[email, wechat, emial]") + "    match: {decision: offer}\n"},
                 [(R, 5, 23, "unknown-channel"),
                  (R, 5, 31, "unknown-channel", 'unknown channel "emial" (did you mean "email"?) '
                                                "(configured: dingtalk, sms, email, webhook)")],
                 id="unknown-channel"),
    pytest.param({R: Y("""\
        version: 1
        defaults:
          channels: [dingtalk, mail]
        rules:
          - id: offer-a
            match: {decision: offer}
            template: offer/standard
        """)}, [(R, 3, 24, "unknown-channel")], id="unknown-channel-in-defaults"),
    pytest.param({CFG: "channels:\n  email: {transport: outbox}\n  dingtalk: {transport: outbox}\n"},
                 [(M, 17, 23, "unknown-channel")], id="unknown-channel-not-configured"),
    pytest.param({R: OFFER_RULE.replace("[email]", "[email, email]") + "    match: {decision: offer}\n"},
                 [(R, 5, 23, "duplicate-channel")], id="duplicate-channel"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: offer-a
            match: {decision: offer}
            template: offer/standard
        """)}, [(R, 3, 5, "missing-channels")], id="missing-channels"),

    # ----------------------------------------------------------------------------- windows and timing
    pytest.param({R: OFFER_RULE + "    match: {decision: offer}\n    timing: {window: business-hour}\n"},
                 [(R, 7, 22, "unknown-window", 'unknown window "business-hour" (did you mean "business-hours"?)')],
                 id="unknown-window"),
    pytest.param({R: Y("""\
        version: 1
        windows:
          weekend: {days: [sat], hours: "18:00-09:00"}
        rules:
          - id: offer-a
            match: {decision: offer}
            template: offer/standard
            channels: [email]
            timing: {window: weekend}
        """)}, [(R, 3, 33, "bad-hours")], id="window-with-an-error-is-not-unknown"),
    pytest.param({R: 'version: 1\nwindows:\n  business-hours: {days: [sat], hours: "10:00-12:00"}\n'},
                 [(R, 3, 3, "duplicate-window",
                   'window "business-hours" is defined twice (first at rules/10-main.yaml:8)')],
                 id="duplicate-window-two-files"),
    pytest.param({CFG: 'windows:\n  business-hours: {days: [mon], hours: "09:00-10:00"}\n'},
                 [(M, 8, 3, "duplicate-window")], id="duplicate-window-config-and-rules"),
    pytest.param({R: OFFER_RULE + "    match: {decision: offer}\n    timing: {delay: 2 hours, deadline: 1x}\n"},
                 [(R, 7, 21, "bad-duration"), (R, 7, 40, "bad-duration")], id="bad-duration"),
    pytest.param({R: 'version: 1\ndefaults:\n  timing: {escalate_after: "-5m"}\n'},
                 [(R, 3, 28, "bad-duration")], id="bad-duration-in-defaults"),
    pytest.param({R: Y("""\
        version: 1
        windows:
          w1: {days: [sat], hours: "18:00-09:00"}
          w2:
            days: [sun]
            hours: ["10:00-12:00", "25:00-26:00"]
          w3: {days: [sun], hours: "9-17"}
        """)}, [(R, 3, 28, "bad-hours"), (R, 6, 12, "bad-hours"), (R, 7, 28, "bad-hours")], id="bad-hours"),
    pytest.param({R: 'version: 1\nwindows:\n  w1: {days: [mon, tues], hours: "09:00-12:00"}\n'},
                 [(R, 3, 20, "bad-weekday")], id="bad-weekday"),
    pytest.param({R: Y("""\
        version: 1
        defaults:
          timezone: Asia/Shanghia
        rules:
          - id: offer-a
            match: {decision: offer}
            template: offer/standard
            channels: [email]
            timezone: Mars/Olympus
        """)}, [(R, 3, 13, "bad-timezone", 'unknown time zone "Asia/Shanghia" (did you mean "Asia/Shanghai"?); '
                                           'use an IANA name such as "Asia/Shanghai"'),
                (R, 9, 15, "bad-timezone")], id="bad-timezone"),
    pytest.param({R: "version: 1\nwindows:\n  w1: {days: [mon, sat], hours: 09:00-12:00, holidays: NO}\n"},
                 [], id="no-norway-problem-unquoted-hours-and-NO"),
    pytest.param({R: 'version: 1\nwindows:\n  w1: {days: [mon], hours: "09:00-12:00", holidays: XX}\n'},
                 [(R, 3, 53, "bad-holidays")], id="bad-holidays"),
    pytest.param({R: OFFER_RULE.replace("[email]", "[email, sms]")
                  + "    match: {decision: offer}\n    timing: {delay: 2d, deadline: 24h}\n"},
                 [(R, 7, 13, "deadline-before-delay")], id="deadline-before-delay"),
    pytest.param({R: OFFER_RULE + "    match: {decision: offer}\n    timing: {escalate_after: 2h}\n"},
                 [(R, 7, 13, "escalate-single-channel")], id="escalate-single-channel"),
    pytest.param({R: OFFER_RULE + "    match: {decision: offer}\n    locale: zh_CN\n"},
                 [(R, 7, 13, "bad-locale")], id="bad-locale"),

    # ----------------------------------------------------------------------------- match and when
    pytest.param({R: OFFER_RULE + "    match: {decision: offer, candidate.nmae: x, atributes.source: y, "
                                  "attributes.source: campus}\n"},
                 [(R, 6, 30, "unknown-field", 'match: "candidate.nmae" is not an outcome field '
                                              '(did you mean "candidate.name"?)'),
                  (R, 6, 49, "unknown-field")], id="unknown-field-match"),
    pytest.param({R: OFFER_RULE + '    match: {decision: offer}\n    when: score > 60 and candidate.nmae == "x"\n'},
                 [(R, 7, 26, "unknown-field", 'when: unknown field "candidate.nmae" (did you mean "candidate.name"?)')],
                 id="unknown-field-when"),
    pytest.param({R: OFFER_RULE + "    match: {decision: rejected}\n"},
                 [(R, 6, 23, "bad-value", 'match decision: "rejected" is never a decision (one of pass, reject, '
                                          'offer, hold) (did you mean "reject"?)')],
                 id="bad-value-decision"),
    pytest.param({R: OFFER_RULE + '    match:\n      decision: offer\n      score: high\n      approved: [true, "yes"]\n'},
                 [(R, 8, 14, "bad-value"), (R, 9, 24, "bad-value")], id="bad-value-types"),
    pytest.param({R: OFFER_RULE + '    match: {decision: offer}\n    when: score >= 60 and and role == "x"\n'},
                 [(R, 7, 27, "when-syntax", 'when: unexpected "and" — expected a value')], id="when-syntax-plain"),
    pytest.param({R: OFFER_RULE + "    match: {decision: offer}\n    when: \"score >= 60 and and role == 'x'\"\n"},
                 [(R, 7, 28, "when-syntax")], id="when-syntax-double-quoted"),
    pytest.param({R: OFFER_RULE + "    match: {decision: offer}\n    when: 'score >= = 60'\n"},
                 [(R, 7, 21, "when-syntax")], id="when-syntax-single-quoted"),
    pytest.param({R: OFFER_RULE + '    match: {decision: offer}\n    when: |\n      score >= 60 and\n      role === "x"\n'},
                 [(R, 9, 14, "when-syntax")], id="when-syntax-literal-block"),
    pytest.param({R: OFFER_RULE + '    match: {decision: offer}\n    when: >\n      score >= 60 and\n      role === "x"\n'},
                 [(R, 9, 14, "when-syntax")], id="when-syntax-folded-block"),
    pytest.param({R: OFFER_RULE + "    match: {decision: offer}\n    when: (score > 1\n"},
                 [(R, 7, 21, "when-syntax")], id="when-syntax-unclosed"),
    pytest.param({R: OFFER_RULE + '    match: {decision: offer}\n    when: reason matches "("\n'},
                 [(R, 7, 26, "bad-regex")], id="when-bad-regex"),

    # ----------------------------------------------------------------------------- reachability
    pytest.param({R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: offer-all
            match: {decision: offer}
            template: offer/standard
          - id: offer-final
            match: {decision: offer, stage: final}
            template: offer/standard
        """)}, [(R, 7, 5, "unreachable-rule", 'rule "offer-final" can never match: rule "offer-all" '
                                              '(rules/20-x.yaml:4) comes first, has no `when`, and matches '
                                              'everything it does')], id="unreachable-rule"),
    pytest.param({R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: o1
            match: {decision: [offer, hold]}
            template: offer/standard
          - id: o2
            match: {decision: hold, role: [a, b]}
            when: score > 1
            template: offer/standard
        """)}, [(R, 7, 5, "unreachable-rule")], id="unreachable-rule-list-covers-value"),
    pytest.param({R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: anything
            priority: 10
            match: {decision: [offer, hold, pass]}
            template: offer/standard
        """)}, [(R, 7, 15, "template-decision"), (M, 18, 5, "unreachable-rule")],
        id="unreachable-rule-by-priority-across-files"),
    pytest.param({R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: offer-all
            match: {decision: offer}
            when: score > 50
            template: offer/standard
          - id: offer-final
            match: {decision: offer, stage: final}
            template: offer/standard
        """)}, [], id="reachable-earlier-has-when"),
    pytest.param({R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: offer-final
            match: {decision: offer, stage: final}
            template: offer/standard
          - id: offer-all
            match: {decision: offer}
            template: offer/standard
        """)}, [], id="reachable-earlier-is-narrower"),
    pytest.param({R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: o1
            match: {decision: offer, role: [a, b]}
            template: offer/standard
          - id: o2
            match: {decision: offer, role: [b, c]}
            template: offer/standard
        """)}, [], id="reachable-partly-overlapping-list"),
    pytest.param({R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: offer-all
            match: {decision: offer}
            template: offer/standard
          - id: offer-final
            priority: 5
            match: {decision: offer, stage: final}
            template: offer/standard
        """)}, [], id="reachable-by-priority"),
    pytest.param({R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: offer-all
            enabled: false
            match: {decision: offer}
            template: offer/standard
          - id: offer-final
            match: {decision: offer, stage: final}
            template: offer/standard
        """)}, [], id="reachable-earlier-disabled"),

    # ----------------------------------------------------------------------------- template / variants
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: offer-a
            match: {decision: offer}
            channels: [email]
        """)}, [(R, 3, 5, "missing-template", 'rule "offer-a" needs a template (or variants)')],
        id="missing-template"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: offer-a
            match: {decision: offer}
            channels: [email]
            template: offer/standard
            variants:
              - {template: offer/standard, weight: 1}
              - {template: offer/warm, weight: 2}
        """), "templates/offer/warm.j2": "{# herald: decisions=[offer] #}\n"
                                          "{% block subject %}S{% endblock %}\n{% block email %}E{% endblock %}\n"},
        [(R, 6, 5, "template-and-variants")], id="template-and-variants"),
    pytest.param({R: Y("""\
        version: 1
        rules:
          - id: offer-a
            match: {decision: offer}
            channels: [email, sms]
            variants:
              - {template: offer/standard, weight: 1}
              - {template: offer/warm, weight: 2}
        """), "templates/offer/warm.j2": "{# herald: decisions=[hold] #}\n"
                                          "{% block subject %}S{% endblock %}\n{% block email %}E{% endblock %}\n"},
        [(R, 8, 20, "template-decision"), (R, 8, 20, "template-missing-block")], id="variant-template-checked"),

    # ----------------------------------------------------------------------------- config
    pytest.param({CFG: Y("""\
        channels:
          email:
            transport: smtp
            host: smtp.example.com
            port: 465
            password: hunter2
            from: hr@example.com
          sms: {transport: outbox}
          dingtalk: {transport: outbox}
        """)}, [(CFG, 6, 15, "literal-secret")], id="literal-secret"),
    pytest.param({CFG: Y(f"""\
        channels:
          email:
            transport: smtp
            host: smtp.example.com
            password: "${{{UNSET}}}"
            from: hr@example.com
          sms: {{transport: outbox}}
          dingtalk: {{transport: outbox}}
        """)}, [(CFG, 5, 15, "unset-env")], id="unset-env"),
    pytest.param({CFG: "rules: policies\n"}, [(CFG, 0, 0, "no-rules")], id="no-rules-configured-path-missing"),
    pytest.param({M: None, "rules": None}, [("rules", 0, 0, "no-rules")], id="no-rules-directory-missing"),
]


def diagnostics(deployment, monkeypatch, files: dict) -> list:
    """Every diagnostic of BASE with `files` laid over it, validated from inside the deployment."""
    merged = {**BASE, **files}
    want_rules_dir = "rules" not in files
    root = deployment({k: v for k, v in merged.items() if k != "rules"}, dirs=False)
    if want_rules_dir:
        (root / "rules").mkdir(exist_ok=True)
    monkeypatch.chdir(root)
    monkeypatch.delenv(UNSET, raising=False)
    return list(load_deployment().diagnostics)


def _key(item: tuple) -> tuple:
    return item[:4]


@pytest.mark.parametrize("files, expected", ROWS)
def test_validate_table(deployment, monkeypatch, files: dict, expected: list) -> None:
    diags = diagnostics(deployment, monkeypatch, files)
    got = sorted((d.file, d.line, d.column, d.code) for d in diags)
    assert got == sorted(_key(e) for e in expected)
    for d in diags:
        assert d.severity == ("warning" if d.code in WARNING_CODES else "error"), d
    for e in expected:
        if len(e) == 5:
            messages = [d.message for d in diags if (d.file, d.line, d.column, d.code) == e[:4]]
            assert e[4] in messages


def test_base_is_valid(deployment, monkeypatch) -> None:
    monkeypatch.chdir(deployment(BASE))
    dep = load_deployment()
    assert dep.diagnostics == () and dep.ok
    assert [r.id for r in dep.ruleset.rules] == ["reject-tech", "reject-all", "pass-all"]


def test_every_check_has_a_row() -> None:
    """The table names every code the issue lists (a check without a row is a check without a test)."""
    needed = {"yaml-syntax", "duplicate-key", "unknown-key", "missing-key", "bad-type", "bad-version",
              "duplicate-rule-id", "unknown-template", "template-decision", "template-missing-block",
              "template-variable", "template-syntax", "template-render", "template-header", "unknown-channel",
              "unknown-window", "duplicate-window", "bad-duration", "bad-hours", "bad-weekday", "bad-timezone",
              "bad-holidays", "unknown-field", "bad-value", "when-syntax", "unreachable-rule", "missing-template",
              "template-and-variants", "missing-channels", "deadline-before-delay", "escalate-single-channel",
              "literal-secret", "unset-env", "no-rules"}
    covered = {e[3] for row in ROWS for e in row.values[1]}
    assert needed <= covered, needed - covered


# ---------------------------------------------------------------------------------------------------
# looser checks for the rows marked as bugs above: what must hold even before they are fixed


def test_bad_weekday_is_reported_on_its_line(deployment, monkeypatch) -> None:
    diags = diagnostics(deployment, monkeypatch,
                        {R: 'version: 1\nwindows:\n  w1: {days: [mon, tues], hours: "09:00-12:00"}\n'})
    assert {(d.file, d.line, d.code) for d in diags} == {(R, 3, "bad-weekday")}
    assert any('did you mean "tue"' in d.message for d in diags)


def test_unset_env_names_the_variable(deployment, monkeypatch) -> None:
    diags = diagnostics(deployment, monkeypatch, {CFG: Y(f"""\
        channels:
          email: {{transport: smtp, host: h, password: "${{{UNSET}}}", from: hr@example.com}}
          sms: {{transport: outbox}}
          dingtalk: {{transport: outbox}}
        """)})
    assert [(d.file, d.code, d.severity) for d in diags] == [(CFG, "unset-env", "warning")]
    assert UNSET in diags[0].message


def test_set_env_is_not_reported(deployment, monkeypatch) -> None:
    files = {CFG: f'channels:\n  email: {{transport: smtp, host: h, password: "${{{UNSET}}}", from: hr@example.com}}\n'
                  "  sms: {transport: outbox}\n  dingtalk: {transport: outbox}\n"}
    monkeypatch.chdir(deployment({**BASE, **files}))
    monkeypatch.setenv(UNSET, "s3cret")
    dep = load_deployment()
    assert dep.diagnostics == ()
    assert dep.config.channels["email"].settings["password"] == "s3cret"
    assert "s3cret" not in repr(dep.config.channels["email"])


def test_bad_decision_is_reported_with_suggestion(deployment, monkeypatch) -> None:
    diags = diagnostics(deployment, monkeypatch, {R: OFFER_RULE + "    match: {decision: rejected}\n"})
    assert (R, 6, 23, "bad-value") in {(d.file, d.line, d.column, d.code) for d in diags}
    assert any('did you mean "reject"' in d.message for d in diags)


def test_folded_when_error_is_in_the_rule(deployment, monkeypatch) -> None:
    diags = diagnostics(deployment, monkeypatch, {
        R: OFFER_RULE + '    match: {decision: offer}\n    when: >\n      score >= 60 and\n      role === "x"\n'})
    assert [(d.file, d.code) for d in diags] == [(R, "when-syntax")]
    assert diags[0].line in (7, 8, 9)


def test_empty_rules_directory_is_reported(deployment, monkeypatch) -> None:
    files = {k: v for k, v in BASE.items() if not k.startswith("rules/")}
    monkeypatch.chdir(deployment(files))
    assert "no-rules" in {d.code for d in load_deployment().diagnostics}


# ---------------------------------------------------------------------------------------------------
# a dozen mistakes, one run

DOZEN = {
    "herald.yaml": Y("""\
        channels:
          email:
            transport: smtp
            host: smtp.example.com
            password: hunter2
            from: hr@example.com
          sms: {transport: outbox}
          dingtalk: {transport: outbox}
          webhook: {transport: outbox}
        """),
    "rules/00-windows.yaml": Y("""\
        version: 1
        windows:
          business-hours: {days: [mon, tue, wed, thu, fri], hours: "09:00-18:00", holidays: CN}
          weekend: {days: [sat, sun], hours: "18:00-09:00"}
          evenings: {days: [mon], hours: "19:00-21:00", holidays: ZZ}
        """),
    "rules/10-reject.yaml": Y("""\
        version: 1
        defaults:
          timezone: Asia/Shanghia
          channels: [dingtalk, email]
          timing: {delay: 30m, window: business-hours}
        rules:
          - id: reject-tech
            match: {decision: reject, role: backend, candidate.nmae: x}
            when: score >= >= 60
            template: reject/generic
          - id: reject-sales
            match: {decision: rejected, role: sales}
            template: reject/generic
          - id: reject-all
            match: {decision: reject}
            tempalte: reject/generic
            channels: [email, wechat]
            timing: {delay: 2 hours, window: evening}
        """),
    "rules/20-pass.yaml": Y("""\
        version: 1
        rules:
          - id: reject-all
            match: {decision: pass}
            template: reject/generic
            channels: [email, webhook]
          - id: pass-next
            match: {decision: pass, stage: first_round}
            template: pass/nxt
            channels: [email]
        """),
    "templates/reject/generic.j2": Y("""\
        {# herald: decisions=[reject] #}
        {% block subject %}Your interview{% endblock %}
        {% block sms %}Hi {{ candidate.nmae }}{% endblock %}
        {% block dingtalk %}Hi {{ candidate.__class__ }}{% endblock %}
        {% block email %}Hi {{ candidate.name }}{% endblock %}
        """),
    "templates/pass/next.j2": Y("""\
        {# herald: decisions=[pass] #}
        {% block subject %}Next{% endblock %}
        {% block email %}Hi {{ candidate.name }{% endblock %}
        """),
    "templates/offer/standard.j2": Y("""\
        {% block subject %}Offer{% endblock %}
        {% block email %}Hi{% endblock %}
        """),
}

DOZEN_EXPECTED = [
    ("herald.yaml", 5, "literal-secret"),
    ("rules/00-windows.yaml", 4, "bad-hours"),
    ("rules/00-windows.yaml", 5, "bad-holidays"),
    ("rules/10-reject.yaml", 3, "bad-timezone"),
    ("rules/10-reject.yaml", 8, "unknown-field"),
    ("rules/10-reject.yaml", 9, "when-syntax"),
    ("rules/10-reject.yaml", 12, "bad-value"),
    ("rules/10-reject.yaml", 16, "unknown-key"),
    ("rules/10-reject.yaml", 17, "unknown-channel"),
    ("rules/10-reject.yaml", 18, "bad-duration"),
    ("rules/10-reject.yaml", 18, "unknown-window"),
    ("rules/20-pass.yaml", 3, "duplicate-rule-id"),
    ("rules/20-pass.yaml", 5, "template-decision"),
    ("rules/20-pass.yaml", 5, "template-missing-block"),
    ("rules/20-pass.yaml", 9, "unknown-template"),
    ("templates/offer/standard.j2", 1, "template-header"),
    ("templates/pass/next.j2", 3, "template-syntax"),
    ("templates/reject/generic.j2", 3, "template-variable"),
    ("templates/reject/generic.j2", 4, "template-render"),
]

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning): (?P<msg>.*) \[(?P<code>[a-z-]+)\]$")


def test_a_dozen_mistakes_in_one_run(deployment, run_cli) -> None:
    root = deployment(DOZEN)
    result = run_cli(["validate"], cwd=root)
    assert result.exit_code == 1
    rows = []
    for text in result.stdout.splitlines():
        m = LINE.match(text)
        assert m, f"not file:line:col: severity: message [code]: {text!r}"
        rows.append((m["file"], int(m["line"]), int(m["col"]), m["code"]))
    found = {(f, line, code) for f, line, _, code in rows}
    missing = [e for e in DOZEN_EXPECTED if e not in found]
    assert not missing, f"not reported: {missing}\n{result.stdout}"
    assert len({code for *_, code in DOZEN_EXPECTED}) >= 12
    assert len({f for f, *_ in DOZEN_EXPECTED}) >= 5
    assert rows == sorted(rows, key=lambda r: (r[0], r[1], r[2])), "not sorted by file and line"
    assert re.search(r"^\d+ error\(s\), \d+ warning\(s\)$", result.stderr, re.M)


# ---------------------------------------------------------------------------------------------------
# mistakes that must never crash the validator

CRASH = "BUG: a mapping (or nested list) as a match value reaches code that hashes it -> TypeError traceback"


@pytest.mark.parametrize("match", [
    pytest.param("{decision: {reject}}", id="decision-flow-set"),
    pytest.param("{role: {backend, frontend}}", id="role-flow-set"),
    pytest.param("{role: [[backend, frontend]]}", id="role-nested-list"),
    pytest.param("{decision: offer, role: {backend, frontend}}", id="second-key-flow-set"),
])
def test_mapping_as_match_value_is_reported_not_raised(deployment, monkeypatch, match: str) -> None:
    """HR may write `role: {backend, frontend}` for "any of": YAML reads a mapping; herald must say so."""
    rule = Y(f"""\
        version: 1
        rules:
          - id: odd
            match: {match}
            template: offer/standard
            channels: [email]
        """)
    diags = diagnostics(deployment, monkeypatch, {R: rule})
    assert {(d.file, d.line) for d in diags if d.code in ("bad-type", "bad-value")} == {(R, 4)}


def test_mapping_match_value_after_a_catch_all_group(deployment, monkeypatch) -> None:
    diags = diagnostics(deployment, monkeypatch, {R: Y("""\
        version: 1
        defaults: {channels: [email]}
        rules:
          - id: a
            match: {role: x}
            template: offer/standard
          - id: b
            match: {role: {}}
            template: offer/standard
        """)})
    assert any(d.code == "bad-type" for d in diags)


_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.floats(allow_nan=False, width=16),
                    st.sampled_from(["reject", "offer", "hold", "x", "", "2h", "1h30m", "0s", "2 hours", "email",
                                     "fax", "offer/standard", "reject/generic", "nope", "mon", "tues",
                                     "09:00-18:00", "18:00-09:00", "CN", "XX", "Asia/Shanghai", "Mars/X", "zh-CN",
                                     "score > 1", "score >", "(", "business-hours"]))
_ODD = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3),
                 st.dictionaries(st.sampled_from(["days", "hours", "template", "weight", "x"]), _SCALAR, max_size=2))
_MATCH_VALUE = st.one_of(_SCALAR, st.lists(_SCALAR, min_size=1, max_size=3))  # mappings: see the tests above
_RULE = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "reject-all", ""])},
    optional={
        "match": st.dictionaries(st.sampled_from(["decision", "role", "score", "approved", "attributes.x",
                                                  "candidate.locale", "candidate", "nope"]), _MATCH_VALUE, max_size=3),
        "template": _ODD, "channels": _ODD, "when": _ODD, "priority": _ODD, "locale": _ODD, "timezone": _ODD,
        "enabled": _ODD, "description": _ODD,
        "timing": st.one_of(_ODD, st.dictionaries(st.sampled_from(["delay", "window", "deadline", "escalate_after",
                                                                   "windw"]), _ODD, max_size=3)),
        "variants": st.one_of(_ODD, st.lists(st.dictionaries(st.sampled_from(["template", "weight"]), _ODD,
                                                             max_size=2), max_size=2)),
    })
_RULE_FILE = st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 1, 2]), "rules": st.one_of(st.lists(_RULE, max_size=3), _ODD)},
    optional={"defaults": st.one_of(_ODD, st.dictionaries(st.sampled_from(["channels", "timing", "locale",
                                                                         "timezone", "priority"]), _ODD, max_size=3)),
              "windows": st.one_of(_ODD, st.dictionaries(st.sampled_from(["w", "business-hours"]), st.one_of(
                  _ODD, st.dictionaries(st.sampled_from(["days", "hours", "holidays"]), _ODD, max_size=3)),
                  max_size=2))})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_RULE_FILE)
def test_arbitrary_rule_files_give_located_diagnostics(tmp_path, monkeypatch, data) -> None:
    """Any YAML structure in a rule file: load_deployment never raises, and every problem is located."""
    import yaml

    root = tmp_path / "dep"  # one directory for every example: BASE, with the generated file laid over it
    for rel, text in BASE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    monkeypatch.chdir(root)
    (root / R).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    dep = load_deployment()
    for d in dep.diagnostics:
        assert d.file in (R, M, CFG) or d.file.startswith("templates/"), d
        assert d.line >= 1 and d.column >= 1, d
        assert d.severity in ("error", "warning") and d.code and d.message
    assert (dep.ruleset is None) == any(d.is_error for d in dep.diagnostics)
