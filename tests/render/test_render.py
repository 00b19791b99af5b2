"""Tests for engine.render.templates: locale resolution, headers, checks, sandboxing, escaping, SMS length, rendering."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import Loc
from engine.model import Message
from engine.render.templates import (
    RenderResult, TemplateFile, TemplateMeta, TemplateStore, build_context, sms_length,
)
from engine.rules.schemas import TEMPLATE_EXTRAS, sample_outcome, template_fields

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "templates"
HEADER = "{# herald: decisions=[reject] #}\n"


@pytest.fixture(scope="module")
def store() -> TemplateStore:
    return TemplateStore(FIXTURES)


def make_store(tmp: Path, files: dict[str, str]) -> TemplateStore:
    for rel, text in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return TemplateStore(tmp)


def ctx(**overrides) -> dict:
    return build_context(sample_outcome(**overrides), TEMPLATE_EXTRAS)


def codes(diags) -> list:
    return [(d.code, d.line, d.column) for d in diags]


# -- scanning and locale resolution --------------------------------------------------------------


def test_fixture_templates_are_clean(store: TemplateStore) -> None:
    assert store.check(template_fields()) == []
    assert store.names() == ["offer/standard", "pass/next-round", "reject/generic", "reject/tech-first-round"]


def test_files_and_names(store: TemplateStore) -> None:
    files = store.files("reject/tech-first-round")
    assert [f.locale for f in files] == [None, "en", "zh-CN"]
    assert all(isinstance(f, TemplateFile) for f in files)
    zh = files[2]
    assert zh.path.endswith("reject/tech-first-round.zh-CN.j2")
    assert zh.blocks == ("subject", "sms", "dingtalk", "email", "email_html")
    assert zh.meta == TemplateMeta(("reject",), "技术一面未通过", zh.meta.extra, 1)
    assert store.files("nope") == []


@pytest.mark.parametrize("prefs, expected", [
    (["zh-CN"], "zh-CN"),
    (["zh-cn"], "zh-CN"),          # tags compare case-insensitively
    (["en-US"], "en"),             # language-only match
    (["en-Latn-US"], "en"),        # progressively shorter tags
    (["fr", "en"], "en"),          # first preference with a file wins
    (["en-GB", "zh-CN"], "en"),    # en-GB's language match comes before the second preference
    (["zh-CN", "en"], "zh-CN"),
    (["zh-TW"], None),             # zh-TW is not zh-CN: fallback
    (["fr"], None),
    ([], None),
    (["", None], None),            # junk preferences are skipped
])
def test_resolve_order(store: TemplateStore, prefs, expected) -> None:
    file = store.resolve("reject/tech-first-round", prefs)
    assert file is not None and file.locale == expected


def test_resolve_without_fallback(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"a/x.en.j2": HEADER + "{% block sms %}hi{% endblock %}"})
    assert s.resolve("a/x", ["fr"]) is None
    assert s.resolve("a/x", ["en-AU"]).locale == "en"
    assert s.resolve("missing", ["en"]) is None
    assert s.names() == ["a/x"]


def test_names_do_not_take_non_locale_suffixes(tmp_path: Path) -> None:
    s = make_store(tmp_path, {
        "r/v2.final.j2": HEADER + "{% block sms %}a{% endblock %}",
        "r/v2.final.zh-Hans-CN.j2": HEADER + "{% block sms %}b{% endblock %}",
        ".hidden/x.j2": HEADER,
    })
    assert s.names() == ["r/v2.final"]
    assert [f.locale for f in s.files("r/v2.final")] == [None, "zh-Hans-CN"]


# -- headers ---------------------------------------------------------------------------------------

GOOD_HEADERS = [
    ("{# herald: decisions=[reject] #}", ("reject",), "", {}),
    ("{# herald: decisions=[reject, hold] description=\"A, b: c\" #}", ("reject", "hold"), "A, b: c", {}),
    ("{# herald: decisions=reject #}", ("reject",), "", {}),
    ("{#- herald:decisions=[pass]   description='x y' -#}", ("pass",), "x y", {}),
    ("{# herald: description=Note: unquoted text decisions=[offer] #}", ("offer",), "Note: unquoted text", {}),
    ("{# herald: decisions=[pass] sms_code=SMS_123 sms_params={name: candidate.name, at: '10:00'} #}",
     ("pass",), "", {"sms_code": "SMS_123", "sms_params": {"name": "candidate.name", "at": "10:00"}}),
    ("{# herald: decisions=[reject, reject] #}", ("reject",), "", {}),
]


@pytest.mark.parametrize("first, decisions, description, extra", GOOD_HEADERS)
def test_good_headers(tmp_path: Path, first, decisions, description, extra) -> None:
    s = make_store(tmp_path, {"t.j2": first + "\n{% block sms %}x{% endblock %}\n"})
    (file,) = s.files("t")
    assert file.meta is not None
    assert file.meta.decisions == decisions
    assert file.meta.description == description
    assert dict(file.meta.extra) == extra
    assert file.meta.header_line == 1
    assert [d for d in s.check() if d.code == "template-header"] == []


BAD_HEADERS = [
    # (text, line, column, message fragment)
    ("{% block sms %}x{% endblock %}", 1, 1, "missing header"),
    ("\n{# herald: decisions=[reject] #}", 2, 1, "first line"),
    ("Hi {# herald: decisions=[reject] #}", 1, 4, "must start the file"),
    ("{# herald: decisions=[rejct] #}", 1, 23, 'did you mean "reject"'),
    ("{# herald: decisions=[reject, passs] #}", 1, 31, 'did you mean "pass"'),
    ("{# herald: decisions=[] #}", 1, 12, "non-empty list"),
    ("{# herald: decisions={a: b} #}", 1, 12, "non-empty list"),
    ("{# herald: description=\"x\" #}", 1, 1, "must declare decisions"),
    ("{# herald: decisions=[reject #}", 1, 22, "not valid YAML"),
    ("{# herald: hello decisions=[reject] #}", 1, 11, "expected key=value"),
    ("{# herald: decisions=[reject] decisions=[pass] #}", 1, 31, "given twice"),
    ("{# herald: decisions=[no] #}", 1, 23, 'unknown decision "no"'),
    ("{# herald: decisions= #}", 1, 12, "non-empty list"),
]


@pytest.mark.parametrize("text, line, column, fragment", BAD_HEADERS)
def test_bad_headers(tmp_path: Path, text, line, column, fragment) -> None:
    s = make_store(tmp_path, {"t.j2": text + "\n{% block sms %}x{% endblock %}\n"})
    header = [d for d in s.check() if d.code == "template-header"]
    assert [(d.line, d.column) for d in header] == [(line, column)], header
    assert fragment in header[0].message
    assert header[0].is_error
    assert header[0].file == s.files("t")[0].path


def test_header_not_first_line_still_read(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"t.j2": "\n\n{# herald: decisions=[pass] #}\n{% block sms %}x{% endblock %}"})
    (file,) = s.files("t")
    assert file.meta.decisions == ("pass",) and file.meta.header_line == 3


# -- checks ----------------------------------------------------------------------------------------


def test_template_syntax(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}\nhello\n{% if x %}\n{% endblock %}\n"})
    diags = s.check()
    assert codes(diags) == [("template-syntax", 5, 1)]
    assert s.files("t")[0].blocks == ()
    r = s.render("t", [], "sms", ctx())
    assert r.message is None and "syntax" in r.error


def test_template_syntax_bad_tag_line(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}\n{{ candidate.name }\n{% endblock %}"})
    assert codes(s.check()) == [("template-syntax", 3, 1)]


def test_template_variable(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}Hi {{ candidate.nmae }}\n"
                                               "{{ postion.title }} {{ position.titel|upper }}{% endblock %}"})
    diags = [d for d in s.check() if d.code == "template-variable"]
    assert codes(diags) == [("template-variable", 2, 22), ("template-variable", 3, 4), ("template-variable", 3, 24)]
    assert 'unknown variable "candidate.nmae" (did you mean "candidate.name"?)' in diags[0].message
    assert '"postion" (did you mean "position"?)' in diags[1].message
    assert '"position.titel" (did you mean "position.title"?)' in diags[2].message


def test_template_variable_locals_and_known_paths_are_fine(tmp_path: Path) -> None:
    body = """{% set greeting = "Hi" %}
{% macro line(item, sep="-") %}{{ sep }} {{ item }}{{ caller() if caller }}{% endmacro %}
{% block email %}
{{ greeting }} {{ candidate.name|upper }} {{ candidate.name.upper() }} {{ candidate['name'] }}
{% for s in feedback.strengths if s %}{{ loop.index }}/{{ loop.length }} {{ line(s) }}{% endfor %}
{% if attributes %}{% for k, v in attributes.items() %}{{ k }}={{ v }}{% endfor %}{% endif %}
{{ attributes.source }} {{ attributes.anything.deep }} {{ feedback.strengths[0] }}
{% with n = feedback.improvements|length %}{{ n }}{% endwith %}
{% set ns = namespace(count=0) %}{% for x in range(3) %}{% set ns.count = ns.count + x %}{% endfor %}{{ ns.count }}
{% call(user) line("x") %}{{ user }}{% endcall %}
{{ company.name }} {{ links.rating }} {{ channel }} {{ self.subject() }} {{ dict(a=1).a }}
{% if next_step.at %}{{ next_step.at }}{% endif %}{{ score is defined }}
{% endblock %}
{% block subject %}S{% endblock %}"""
    s = make_store(tmp_path, {"t.j2": HEADER + body})
    assert [d.format() for d in s.check()] == []


def test_loop_outside_a_loop_and_names_out_of_scope_are_reported(tmp_path: Path) -> None:
    body = ("{% block sms %}{% for s in feedback.strengths %}{{ s }}{% endfor %}\n"
            "{{ s }} {{ loop.index }}{% endblock %}")
    s = make_store(tmp_path, {"t.j2": HEADER + body})
    assert codes([d for d in s.check() if d.code == "template-variable"]) == [
        ("template-variable", 3, 4), ("template-variable", 3, 12)]


def test_template_render_error_line(tmp_path: Path) -> None:
    body = "{% block sms %}\nline two\n{{ 1 // 0 }}\n{% endblock %}\n{% block email %}{{ score + '' }}{% endblock %}"
    s = make_store(tmp_path, {"t.j2": HEADER + body})
    diags = s.check()
    assert codes(diags) == [("template-render", 4, 1), ("template-render", 6, 1)]
    assert "ZeroDivisionError" in diags[0].message and "block sms" in diags[0].message
    assert "TypeError" in diags[1].message
    r = s.render("t", ["en"], "sms", ctx())
    assert r.message is None and r.error.startswith(f"{s.files('t')[0].path}:4: block sms")


def test_template_render_in_macro_reports_the_macro_line(tmp_path: Path) -> None:
    body = "{% macro boom() %}\n{{ candidate.name() }}\n{% endmacro %}\n{% block sms %}{{ boom() }}{% endblock %}"
    s = make_store(tmp_path, {"t.j2": HEADER + body})
    assert codes(s.check()) == [("template-render", 3, 1)]


def test_render_warning_when_optional_data_missing(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}\n{% if score > 60 %}good{% endif %}{% endblock %}"})
    diags = s.check()
    assert codes(diags) == [("template-render", 3, 1)]
    assert diags[0].severity == "warning" and "optional" in diags[0].message


def test_template_locale_mismatch(tmp_path: Path) -> None:
    s = make_store(tmp_path, {
        "t.j2": HEADER + "{% block sms %}a{% endblock %}{% block email %}b{% endblock %}",
        "t.en.j2": "{# herald: decisions=[reject, pass] #}\n{% block sms %}a{% endblock %}",
        "t.zh-CN.j2": HEADER + "{% block email %}b{% endblock %}{% block sms %}a{% endblock %}",
    })
    diags = s.check()
    assert [(Path(d.file).name, d.code, d.line, d.column, d.severity) for d in diags] == [
        ("t.en.j2", "template-locale-mismatch", 1, 1, "warning"),
        ("t.en.j2", "template-locale-mismatch", 1, 1, "warning"),
    ]
    assert "decisions" in diags[0].message or "decisions" in diags[1].message
    assert any("lacks email" in d.message for d in diags)


def test_check_with_custom_sample_context(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}{{ 10 / score }}{% endblock %}"})
    assert [d.severity for d in s.check()] == ["warning"]  # only without a score
    diags = s.check(template_fields(), sample_context_for=lambda name: ctx(score=0))
    assert codes(diags) == [("template-render", 2, 1)]


# -- check_usage -----------------------------------------------------------------------------------


def test_check_usage_ok(store: TemplateStore) -> None:
    loc = Loc("rules/a.yaml", 7, 15)
    assert store.check_usage("reject/tech-first-round", ["reject"], ["sms", "email", "dingtalk"], loc) == []
    assert store.check_usage("pass/next-round", ("pass",), ("webhook",), loc) == []


def test_check_usage_unknown_template(store: TemplateStore) -> None:
    loc = Loc("rules/a.yaml", 7, 15)
    (d,) = store.check_usage("reject/tech-frist-round", ["reject"], ["sms"], loc)
    assert (d.file, d.line, d.column, d.code) == ("rules/a.yaml", 7, 15, "unknown-template")
    assert 'did you mean "reject/tech-first-round"' in d.message


def test_check_usage_decision(store: TemplateStore) -> None:
    loc = Loc("rules/a.yaml", 3, 5)
    diags = store.check_usage("reject/generic", ["reject", "pass", "hold", "offer"], ["sms"], loc)
    assert [(d.code, d.line, d.column) for d in diags] == [("template-decision", 3, 5)] * 2
    assert diags[0].message == ("template reject/generic does not declare decision pass: "
                                "a rule that can match pass must not use it")
    assert "decision offer" in diags[1].message


def test_check_usage_decision_per_locale_file(tmp_path: Path) -> None:
    s = make_store(tmp_path, {
        "t.j2": "{# herald: decisions=[reject, pass] #}\n{% block sms %}a{% endblock %}",
        "t.en.j2": HEADER + "{% block sms %}a{% endblock %}",
    })
    (d,) = s.check_usage("t", ["pass"], ["sms"], Loc("r.yaml", 1, 1))
    assert d.code == "template-decision" and "t.en.j2" in d.message


def test_check_usage_missing_block(store: TemplateStore) -> None:
    loc = Loc("rules/a.yaml", 9, 3)
    diags = store.check_usage("reject/generic", ["reject"], ["sms", "dingtalk", "email", "webhook"], loc)
    assert [(d.code, d.line, d.column) for d in diags] == [("template-missing-block", 9, 3)] * 2
    assert "no block dingtalk" in diags[0].message and "no block webhook" in diags[1].message


def test_check_usage_email_needs_subject(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block email %}a{% endblock %}"})
    (d,) = s.check_usage("t", ["reject"], ["email"], Loc("r.yaml", 2, 3))
    assert d.code == "template-missing-block" and "no block subject" in d.message


def test_checks_parse_each_file_once_and_judge_each_usage_once(tmp_path: Path, monkeypatch) -> None:
    """validate on a large rule set stays fast because the work is shared, not by a stopwatch: each template
    file is parsed once, and each (template, decisions, channels) usage is judged once however many rules
    use it (10,000 rules over 100 templates here)."""
    import engine.render.templates as templates_module

    parses: list[str] = []
    real_parse = templates_module.TEXT_ENV.parse

    def counting_parse(source, name=None, filename=None):
        parses.append(name)
        return real_parse(source, name=name, filename=filename)

    monkeypatch.setattr(templates_module.TEXT_ENV, "parse", counting_parse)
    source = (FIXTURES / "reject" / "tech-first-round.zh-CN.j2").read_text(encoding="utf-8")
    files = {}
    for i in range(100):
        # vary the text so nothing could be shared between files
        files[f"g{i % 10}/t{i}.j2"] = source.replace("面试结果", f"面试结果 {i}")
    s = make_store(tmp_path, files)
    assert s.check() == []
    judged: list = []

    class CountingCache(dict):
        def __setitem__(self, key, value) -> None:
            judged.append(key)
            super().__setitem__(key, value)

    s._usage_cache = CountingCache()
    usages = set()
    for r in range(10_000):
        decisions = ("reject",) if r % 3 else ("reject", "pass")
        name = f"g{(r * 7) % 10}/t{r % 100}"
        usages.add((name, decisions, ("sms", "email")))
        diags = s.check_usage(name, decisions, ("sms", "email"), Loc("rules.yaml", r + 1, 3))
        assert all(d.line == r + 1 for d in diags)  # shared judgement, located per rule
    assert sorted(parses) == sorted(name.removesuffix(".j2") for name in files), "each file is parsed exactly once"
    assert len(judged) == len(usages) == len(set(judged)), "each usage is judged once, then shared"


# -- sandbox ---------------------------------------------------------------------------------------

SSTI_PAYLOADS = [
    "{{ candidate.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__.os }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "{{ candidate|attr('__class__') }}",
    "{{ candidate['__class__']['__base__'] }}",
    "{{ '{0.__class__.__base__}'.format(candidate) }}",
    "{{ '{0.__class__}'.format_map(candidate) }}",
    "{{ range(10**9)|list }}",
    "{{ 'a' * 10**8 }}",
    "{{ '%999999999s' % 'x' }}",
    "{{ feedback.strengths.append('leak') }}",
    "{{ candidate.update({'name': 'x'}) }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ candidate.items }}",
    "{{ candidate.name.upper ~ '' }}",
    "{{ '%s'|format(candidate.get) }}",
    "{{ range }}{{ dict }}",
    "{{ candidate.name|map('upper') }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os }}",
    "{{ get_flashed_messages.__globals__['current_app'].config }}",
]
LEAK_MARKERS = ("<class", "<function", "<built-in", "<bound", " at 0x", "<module", "__globals__",
                "subprocess", "posix", "root:", "uid=", "Namespace", "TemplateReference")


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_sandbox_escapes_never_leak(tmp_path: Path, payload: str) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}" + payload + "{% endblock %}\n"
                                               "{% block email_html %}" + payload + "{% endblock %}"})
    context = ctx()
    for channel in ("sms",):
        r = s.render("t", ["zh-CN"], channel, context)
        text = r.message.body if r.message else ""
        for marker in LEAK_MARKERS:
            assert marker not in text
    problems = [d for d in s.check() if d.code in ("template-render", "template-variable") and d.is_error]
    assert problems, payload
    # the context was not changed by the attempt
    assert context["feedback"]["strengths"] == ["逻辑思维清晰"] and context["candidate"]["name"] == "张伟"


@pytest.mark.parametrize("payload", [
    "{{ candidate.__class__ }}", "{{ ''.__class__.__mro__ }}", "{{ self._TemplateReference__context }}",
    "{{ range(10**9)|list }}", "{{ candidate.items }}", "{{ self }}", "{{ 'x' * 10**9 }}",
    "{{ candidate.name.__class__.__base__.__subclasses__() }}",
    "{{ candidate.name|center(10**9) }}", "{{ candidate.name.ljust(10**9) }}", "{{ '{:>999999999}'.format(1) }}",
    "{{ '%*d'|format(10**9, 1) }}", "{{ '%999999999d' % 1 }}", "{{ 2 ** 100000 }}",
])
def test_sandbox_violations_are_render_errors(tmp_path: Path, payload: str) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}\n" + payload + "{% endblock %}"})
    r = s.render("t", [], "sms", ctx())
    assert r.message is None and r.error
    assert codes(d for d in s.check() if d.code == "template-render") == [("template-render", 3, 1)]


def test_safe_helpers_work(tmp_path: Path) -> None:
    body = ("{% block sms %}{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}"
            "{{ ns.n }} {{ dict(a=1)['a'] }} {{ candidate.phone|mask }} {{ candidate.email|mask }} "
            "{{ occurred_at|date('%Y-%m-%d') }} {{ 'x'|date }} {{ candidate.name|length }} "
            "{{ '%-5s|'|format('ab') }} {{ 2 ** 10 }} {{ 'ab' * 3 }}{% endblock %}")
    s = make_store(tmp_path, {"t.j2": HEADER + body})
    r = s.render("t", [], "sms", ctx())
    assert r.error is None
    assert r.message.body == "6 1 +86*******0000 zh***@example.com 2026-11-20 x 2 ab   | 1024 ababab"


# -- escaping and rendering ------------------------------------------------------------------------


def test_autoescape_only_in_html(store: TemplateStore) -> None:
    context = ctx(candidate={"name": "<script>alert(1)</script>", "email": "a@b.cn", "phone": "+8613800000000"})
    email = store.render("reject/tech-first-round", ["zh-CN"], "email", context)
    assert email.error is None
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.message.html
    assert "<script>" not in email.message.html
    assert email.message.body.startswith("<script>alert(1)</script>您好")
    sms = store.render("reject/tech-first-round", ["zh-CN"], "sms", context)
    assert sms.message.body.startswith("<script>alert(1)</script>您好")
    ding = store.render("reject/tech-first-round", ["zh-CN"], "dingtalk", context)
    assert "<script>alert(1)</script>" in ding.message.body


def test_render_email_message(store: TemplateStore) -> None:
    r = store.render("reject/tech-first-round", ["zh-CN"], "email", ctx())
    assert isinstance(r, RenderResult) and r.error is None and r.locale == "zh-CN"
    m = r.message
    assert isinstance(m, Message) and m.channel == "email"
    assert m.subject == "关于您应聘后端开发工程师的面试结果"
    assert m.body.startswith("张伟您好:") and m.body.endswith("示例科技 招聘团队")
    assert "1. 逻辑思维清晰" in m.body and "\n\n\n" not in m.body
    assert m.html.startswith("<p>张伟您好:</p>")
    assert m.sms_chars is None and m.sms_segments is None


def test_render_sms_and_subject_collapse(store: TemplateStore) -> None:
    r = store.render("reject/generic", ["en"], "sms", ctx())
    assert r.locale is None and r.message.channel == "sms"
    assert r.message.body == "张伟您好,感谢您关注示例科技。"
    assert r.message.sms_chars == 15 and r.message.sms_segments == 1
    assert r.message.subject == "Your application at 示例科技"
    email = store.render("reject/generic", ["en"], "email", ctx())
    assert email.message.html is None and email.message.subject == "Your application at 示例科技"


def test_render_other_channel_and_top_level_helpers(store: TemplateStore) -> None:
    r = store.render("pass/next-round", ["zh-CN"], "webhook", ctx(decision="pass"))
    assert r.error is None
    assert r.message.body == '{"candidate": "\\u5f20\\u4f1f", "phone": "+86*******0000"}'
    email = store.render("pass/next-round", ["zh-CN"], "email", ctx(decision="pass"))
    assert email.message.body.startswith("张伟您好:")  # top-level {% set %} seen inside the block
    assert email.message.body.endswith("示例科技 招聘团队")  # top-level macro
    assert "决定时间:2026年11月20日" in email.message.body


def test_render_errors_are_values(store: TemplateStore) -> None:
    r = store.render("reject/nope", ["zh-CN"], "sms", ctx())
    assert r.template is None and r.message is None and "unknown template" in r.error
    r = store.render("reject/generic", ["zh-CN"], "dingtalk", ctx())
    assert r.message is None and "no block dingtalk" in r.error
    r = store.render("reject/generic", ["zh-CN"], "sms", ctx(decision="pass"))
    assert r.message is None and "does not declare decision pass" in r.error


def test_main_block_alone_renders_as_in_the_full_message(store: TemplateStore) -> None:
    """main_only (one block, the fast path where the file allows) gives the same body as a full render,
    for every template, locale and channel of the fixtures, and the same errors."""
    seen = 0
    for name in store.names():
        for file in store.files(name):
            decision = file.meta.decisions[0] if file.meta else "reject"
            for channel in ("sms", "dingtalk", "email", "webhook"):
                prefs = [file.locale] if file.locale else []
                full = store.render(name, prefs, channel, ctx(decision=decision))
                main = store.render(name, prefs, channel, ctx(decision=decision), main_only=True)
                assert (full.error is None) == (main.error is None), (name, channel, full.error, main.error)
                if full.error is None:
                    seen += 1
                    assert main.message.body == full.message.body
                    assert main.message.subject is None and main.message.html is None
    assert seen >= 15


def test_an_error_in_the_main_block_alone_names_its_line(tmp_path: Path) -> None:
    body = "{% block subject %}hi{% endblock %}\n{% block email %}\nok\n{{ score + '' }}\n{% endblock %}"
    s = make_store(tmp_path, {"t.j2": HEADER + body})
    for main_only in (True, False):
        r = s.render("t", ["en"], "email", ctx(), main_only=main_only)
        assert r.message is None and r.error.startswith(f"{s.files('t')[0].path}:5: block email: TypeError")


def test_missing_optional_data_renders(store: TemplateStore) -> None:
    minimal = build_context({"id": "x", "decision": "reject", "candidate": {"name": "Li"}}, TEMPLATE_EXTRAS)
    for name, channels in (("reject/tech-first-round", ("sms", "email", "dingtalk")),
                           ("reject/generic", ("sms", "email"))):
        for locale in ("zh-CN", "en", "fr"):
            for channel in channels:
                r = store.render(name, [locale], channel, minimal)
                assert r.error is None, r.error
                assert "Li" in r.message.body
    r = store.render("reject/tech-first-round", ["zh-CN"], "email", minimal)
    assert r.message.subject == "关于您应聘我司的面试结果"
    assert "None" not in r.message.body and "面试官认可" not in r.message.body
    r = store.render("pass/next-round", ["zh-CN"], "email", {**minimal, "decision": "pass"})
    assert r.error is None and "地点" not in r.message.body


def test_none_values_render_empty(tmp_path: Path) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}[{{ position.title }}]{% endblock %}"})
    r = s.render("t", [], "sms", ctx(position={"title": None}))
    assert r.message.body == "[]"


def test_absent_keys_are_undefined_exactly_as_in_jinja_s_sandbox() -> None:
    """herald's short cut for a key missing from a plain dict gives what Jinja's sandbox gives."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from engine.render.sandbox import TEXT_ENV as _TEXT_ENV

    stock = ImmutableSandboxedEnvironment(undefined=_TEXT_ENV.undefined)
    for obj, name in (({"a": 1}, "note"), ({}, "improvements"), ({"x": None}, "y")):
        mine, theirs = _TEXT_ENV.getattr(obj, name), stock.getattr(obj, name)
        assert type(mine) is type(theirs)
        assert (mine._undefined_obj, mine._undefined_name, mine._undefined_hint) == \
            (theirs._undefined_obj, theirs._undefined_name, theirs._undefined_hint)


@pytest.mark.parametrize("expr,out", [
    ("{{ feedback.note }}", ""), ("{{ feedback.note.more }}", ""), ("{{ feedback.note is defined }}", "False"),
    ("{{ feedback.note | default('none') }}", "none"), ("{{ feedback.items is defined }}", "True"),
    ("{{ feedback.strengths | join('/') }}", "a/b"),
])
def test_absent_feedback_fields_render(tmp_path: Path, expr: str, out: str) -> None:
    s = make_store(tmp_path, {"t.j2": HEADER + "{% block sms %}" + expr + "{% endblock %}"})
    r = s.render("t", [], "sms", ctx(feedback={"strengths": ["a", "b"]}))
    assert r.error is None and r.message.body == out


def test_build_context() -> None:
    c = build_context({"decision": "pass", "candidate": {"name": "A"}, "extra": ("x",)}, TEMPLATE_EXTRAS)
    assert c["candidate"] == {"name": "A"} and c["company"]["name"] == "示例科技"
    assert c["channel"] == "email" and c["extra"] == ["x"]


# -- SMS length ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, chars, segments", [
    ("", 0, 0),
    ("a" * 160, 160, 1),
    ("a" * 161, 161, 2),
    ("a" * 306, 306, 2),
    ("a" * 307, 307, 3),
    ("中" * 70, 70, 1),
    ("中" * 71, 71, 2),
    ("中" * 134, 134, 2),
    ("中" * 135, 135, 3),
    ("€", 2, 1),
    ("€" * 80, 160, 1),
    ("a" + "€" * 80, 161, 2),
    ("[]{}", 8, 1),
    ("é" * 160, 160, 1),               # é is in the GSM basic set
    ("a" * 159 + "中", 160, 3),         # one non-GSM character makes it UCS-2
    ("😀" * 35, 70, 1),                 # astral characters count two UTF-16 units
    ("😀" * 36, 72, 2),
])
def test_sms_length(text: str, chars: int, segments: int) -> None:
    assert sms_length(text) == (chars, segments)


def test_sms_length_does_not_split_escape_pairs() -> None:
    # 152 plain characters then a 2-septet '€': the euro moves to the second segment
    assert sms_length("a" * 152 + "€" + "a" * 10) == (164, 2)
    assert sms_length("a" * 152 + "€" + "a" * 152) == (306, 3)


def _plain_sms_length(text: str) -> tuple[int, int]:
    """sms_length as first written: a width per character, always (the reference for its set scans)."""
    from engine.render.templates import _GSM_BASIC, _GSM_EXTENSION, _segments

    if all(c in _GSM_BASIC or c in _GSM_EXTENSION for c in text):
        widths = [2 if c in _GSM_EXTENSION else 1 for c in text]
        return sum(widths), _segments(widths, 160, 153)
    widths = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return sum(widths), _segments(widths, 70, 67)


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.tuples(st.sampled_from(["a", "é", "€", "[", "中", "😀", " ", "\n"]), st.integers(0, 170)),
                      max_size=4))
def test_sms_length_equals_the_plain_count(parts: list) -> None:
    text = "".join(c * n for c, n in parts)
    assert sms_length(text) == _plain_sms_length(text)



@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=st.one_of(
    st.sampled_from(sorted(__import__("engine.render.templates", fromlist=["_GSM"])._GSM)),
    st.sampled_from(["\ud800", "\udfff", "`", "\x00", "\u0394", "\u20ac", "\uffff", "\U00010000", "\U0010ffff"]),
    st.characters()), max_size=400))
def test_sms_length_equals_the_plain_count_for_any_text(text: str) -> None:
    # every GSM character, lone surrogates (one UTF-16 unit each, as one character), the BMP's last character
    # and the first and last beyond it, and any other character
    assert sms_length(text) == _plain_sms_length(text)

# -- robustness ------------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from([
    "{% block sms %}", "{% endblock %}", "{% block email %}", "{% block email_html %}", "{{ ", " }}", "{% ",
    " %}", "{# herald: decisions=[reject] #}", "{# herald: ", "decisions=[", "]", "#}", "candidate.name",
    "{% for x in feedback.strengths %}", "{% endfor %}", "{% if ", "{% endif %}", "{% set a = ", "|join(',')",
    "__class__", ".", "(", ")", "[", "'", '"', "\n", "{{ loop.index }}", "{% macro m() %}", "{% endmacro %}",
    "self", "range(", "**", "*", "%", "1/0", "caller()", "{% raw %}", "{% endraw %}", "{%- ", " -%}", "\ufeff",
])
TEMPLATE_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=30).map("".join),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATE_TEXT)
def test_arbitrary_text_never_raises(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "r").mkdir()
        (Path(tmp) / "r" / "x.zh-CN.j2").write_text(text, encoding="utf-8", errors="surrogatepass")
        (Path(tmp) / "r" / "x.j2").write_text(HEADER + "{% block sms %}ok{% endblock %}", encoding="utf-8")
        s = TemplateStore(tmp)
        diags = s.check()
        assert all(d.line >= 1 and d.column >= 1 for d in diags)
        assert all(d.code.startswith("template-") for d in diags)
        s.check_usage("r/x", ["reject", "pass"], ["sms", "email"], Loc("r.yaml", 1, 1))
        for channel in ("sms", "email", "dingtalk"):
            r = s.render("r/x", ["zh-CN"], channel, ctx())
            assert (r.message is None) != (r.error is None)


def test_invalid_utf8_is_a_diagnostic(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_bytes(HEADER.encode() + b"{% block sms %}\n\xff\xfe{% endblock %}")
    s = TemplateStore(tmp_path)
    assert ("template-syntax", 3, 1) in codes(s.check())


def test_missing_directory_is_empty(tmp_path: Path) -> None:
    s = TemplateStore(tmp_path / "nope")
    assert s.names() == [] and s.check() == []
    (d,) = s.check_usage("x", ["reject"], ["sms"], Loc("r.yaml", 1, 1))
    assert d.code == "unknown-template"


# -- render_message (the dry-run's call) ----------------------------------------------------------


@pytest.mark.parametrize("name, channel, context, main_only, code", [
    ("t", "dingtalk", {"decision": "reject", "candidate": {"name": "Li"}}, True, None),      # the fast path
    ("t", "email", {"decision": "reject", "candidate": {"name": "Li"}}, False, None),       # several blocks
    ("t", "sms", {"decision": "reject", "candidate": {"name": "李"}}, True, None),
    ("nope", "dingtalk", {"decision": "reject"}, True, "template-unknown"),
    ("t", "webhook", {"decision": "reject"}, True, "template-unrenderable"),
    ("t", "dingtalk", {"decision": "offer"}, True, "template-decision"),
    ("t", "dingtalk", {"decision": "reject", "candidate": {"name": 1}, "boom": 0}, True, "template-render"),
    ("big", "dingtalk", {"decision": "reject"}, True, "render-budget"),
])
def test_render_message_answers_as_render(tmp_path: Path, name, channel, context, main_only, code) -> None:
    """(file, message, None) where render() succeeds, (file or None, None, render()'s result) where it fails."""
    from engine.render.budget import RenderLimits

    make_store(tmp_path, {
        "t.j2": HEADER + "{% block subject %}S {{ candidate.name }}{% endblock %}"
                         "{% block dingtalk %}Hi {{ candidate.name }}{{ 1 // boom if boom is defined }}{% endblock %}"
                         "{% block sms %}Hi {{ candidate.name }}{% endblock %}"
                         "{% block email %}Dear {{ candidate.name }}{% endblock %}",
        "big.j2": HEADER + "{% block dingtalk %}{% for i in range(1000) %}{{ i }}{% endfor %}{% endblock %}"})
    store = TemplateStore(tmp_path, RenderLimits(time_ms=200, output_chars=1000))
    result = store.render(name, (), channel, context, main_only=main_only)
    file, message, failed = store.render_message(name, (), channel, context, main_only)
    assert result.code == code and file == result.template
    if code is None:
        assert failed is None and message == result.message and result.ok
    else:
        assert message is None and failed == result
