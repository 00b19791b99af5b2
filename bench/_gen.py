"""Synthetic deployments and outcomes for the benchmarks (bench/validate.py, bench/dryrun.py).

Everything is seeded, so two runs generate the same files. A generated deployment is meant to
validate CLEAN (no error, no warning): in particular no rule may be unreachable. That holds by
construction:

- every rule pins `decision`; rules are ordered by the number of `match` keys, most first, so a rule
  whose keys are a strict subset of another's (the only kind that can cover it) always comes later;
- within one set of keys, the value combinations (the product of each key's values) of the rules
  without `when` are disjoint, so none covers another;
- a rule with `when` sits right before the `when`-less rule whose combinations it shares (a guarded
  special case before its fallback), so only rules that cannot cover it come before it;
- the catch-alls (`match: {decision: X}`) come last; `priority` is only given to rules with `when`.

Rules and outcomes draw their values from the same (skewed) vocabularies, so routing does real work:
outcomes hit specific rules, guarded rules, and catch-alls.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

DECISIONS = ("reject", "pass", "offer", "hold")
DECISION_WEIGHTS = (55, 25, 10, 10)
STAGES = ("phone_screen", "first_round", "second_round", "third_round", "final", "hr_round")
ROLES = ("backend", "frontend", "data", "qa", "mobile", "devops", "security", "ml", "embedded", "sre",
         "dba", "architect", "product", "design", "ux_research", "sales", "account_manager", "presales",
         "bd", "marketing", "content", "finance", "accounting", "legal", "hr", "recruiting", "admin",
         "procurement", "supply_chain", "customer_success", "support", "operations", "analyst", "pm",
         "tech_writer", "game_dev", "hardware", "network", "it_support", "consultant")
REASONS = ("lacks_project_experience", "skills_gap", "industry_knowledge", "culture_fit", "compensation",
           "position_filled", "overqualified", "communication", "leadership", "english_level", "location",
           "notice_period", "background_check", "assessment_score", "no_show", "withdrew", "team_fit",
           "seniority_mismatch", "visa", "other")
SOURCES = ("website", "referral", "campus", "headhunter", "linkedin", "boss_zhipin", "lagou", "liepin",
           "internal", "event")
LOCALES = ("zh-CN", "en", "en-US", "zh-TW")
LOCALE_WEIGHTS = (70, 18, 8, 4)
TIMEZONES = ("Asia/Shanghai", "Asia/Singapore", "Asia/Tokyo", "Europe/Berlin", "America/Los_Angeles")
TZ_WEIGHTS = (80, 6, 4, 5, 5)
LEVELS = ("P4", "P5", "P6", "P7", "P8", "P9")
TITLES = ("后端开发工程师", "前端开发工程师", "数据工程师", "测试开发工程师", "销售经理", "大客户经理",
          "产品经理", "财务分析师", "招聘专员", "运维工程师", "算法工程师", "Backend Engineer",
          "Product Manager", "Sales Manager")
DEPARTMENTS = ("研发中心", "数据平台部", "质量保障部", "销售部", "产品部", "财务部", "人力资源部", "R&D")
STRENGTHS = ("逻辑思维", "编程基础", "算法功底", "沟通表达", "抗压能力", "细致严谨", "学习能力",
             "problem breakdown", "communication", "ownership")
IMPROVEMENTS = ("补充大型项目经验", "加强数据结构与算法练习", "补充行业知识", "表达时先讲结论再讲依据",
                "深入学习分布式系统", "more practice with system design", "building industry knowledge")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = ("伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英",
         "霞", "平", "刚", "桂英", "欣怡", "子涵", "浩然", "梓萱", "宇轩", "思远")
EN_NAMES = ("Alice Chen", "Bob Li", "Carol Wang", "David Zhang", "Emma Liu", "Frank Wu", "Grace Lin")
CHANNEL_ORDERS = (["dingtalk", "email"], ["dingtalk", "sms", "email"], ["email", "dingtalk"],
                  ["sms", "email"], ["email", "sms", "dingtalk"], ["webhook", "email", "dingtalk"])

# Sets of `match` keys, per decision; `decision` is always one of them.
KEYSETS = {
    "reject": (("stage", "role", "reason", "attributes.source"), ("stage", "role", "reason"),
               ("role", "reason", "candidate.locale"), ("stage", "role"), ("role", "reason"), ("stage",)),
    "pass": (("stage", "role", "attributes.source"), ("stage", "role"), ("role", "attributes.source"),
             ("stage",)),
    "offer": (("role", "attributes.source", "candidate.locale"), ("role", "attributes.source"), ("role",)),
    "hold": (("stage", "role", "reason"), ("role",), ("stage",)),
}
# Which key of a rule may hold a list ("any of"), and how long such a list may be.
LIST_KEYS = {"role": 4, "stage": 2, "attributes.source": 3, "reason": 2, "candidate.locale": 2}


def _zipf(values: tuple, s: float = 0.9) -> tuple:
    return tuple(1.0 / (i + 1) ** s for i in range(len(values)))


VOCAB = {
    "stage": (STAGES, (10, 30, 25, 8, 20, 7)),
    "role": (ROLES, _zipf(ROLES)),
    "reason": (REASONS, _zipf(REASONS)),
    "attributes.source": (SOURCES, _zipf(SOURCES)),
    "candidate.locale": (LOCALES, LOCALE_WEIGHTS),
}


def _pick(rng: random.Random, key: str) -> str:
    values, weights = VOCAB[key]
    return rng.choices(values, weights)[0]


# --------------------------------------------------------------------------------------- when

def random_when(rng: random.Random, decision: str) -> str:
    """A `when` expression, drawn from a dozen realistic shapes with random parameters."""
    t = rng.randrange(40, 95)
    shapes = [
        lambda: f"score >= {t}",
        lambda: f'score < {t} and candidate.locale == "zh-CN"',
        lambda: "attributes.source in [" + ", ".join(f'"{s}"' for s in rng.sample(SOURCES, rng.randint(1, 3))) + "]",
        lambda: "feedback.improvements != null and feedback.improvements != []",
        lambda: f'candidate.timezone startswith "{rng.choice(["Asia/", "Europe/", "America/"])}"',
        lambda: f'position.title contains "{rng.choice(["工程师", "经理", "Engineer", "专员"])}"',
        lambda: f'candidate.email endswith "@{rng.choice(["example.com", "example.cn", "mail.example.org"])}"',
        lambda: f'attributes.level matches "^P[{rng.randint(4, 6)}-{rng.randint(7, 9)}]$"',
        lambda: f"not (score >= {t}) or attributes.referral == true",
        lambda: f'feedback.strengths contains "{rng.choice(STRENGTHS)}"',
        lambda: f"score >= {t - 20} and score < {t}",
        lambda: f"attributes.years_experience >= {rng.randint(2, 10)}",
        lambda: f'candidate.locale in ["en", "en-US"] or position.department == "{rng.choice(DEPARTMENTS)}"',
        lambda: f'(score >= {t} or attributes.referral == true) and candidate.phone != null',
    ]
    return rng.choice(shapes)()


# ----------------------------------------------------------------------------------- templates

@dataclass
class TemplateSpec:
    name: str
    decisions: tuple
    html: bool


def template_specs(count: int = 100) -> list[TemplateSpec]:
    """`count` template names: most serve one decision, five serve them all (acknowledgements)."""
    out = []
    general = 5
    per = {"reject": 0.45, "pass": 0.25, "offer": 0.15, "hold": 0.15}
    rest = count - general
    for d, share in per.items():
        n = max(1, round(rest * share))
        out.extend(TemplateSpec(f"{d}/t{i:03d}", (d,), html=(i % 3 == 0)) for i in range(n))
    out.extend(TemplateSpec(f"common/ack{i:02d}", DECISIONS, html=False) for i in range(general))
    return out[:count] if len(out) > count else out


_ZH = {
    "reject": ("很遗憾，本次您未能进入下一轮。", "面试结果通知"),
    "pass": ("恭喜您通过本轮面试，我们诚挚邀请您参加下一轮。", "面试通过通知"),
    "offer": ("恭喜您通过全部面试，获得录用！", "录用通知"),
    "hold": ("您的简历已进入我们的人才库，合适的机会出现时我们会第一时间联系您。", "人才库通知"),
}
_EN = {
    "reject": ("We are sorry that you will not be moving on this time.", "Your interview result"),
    "pass": ("Congratulations: you passed this round, and we would like to invite you to the next one.",
             "You passed this round"),
    "offer": ("Congratulations: you passed every interview, and we are delighted to offer you the position.",
              "Your offer"),
    "hold": ("We have added your profile to our talent pool and will contact you when a good match opens.",
             "Talent pool"),
}


def template_text(spec: TemplateSpec, zh: bool, variant: int) -> str:
    """One template file with every channel block (and email_html for some), valid in the sandbox."""
    d = spec.decisions[0] if len(spec.decisions) == 1 else "hold"
    line, subject = (_ZH if zh else _EN)[d]
    head = "{# herald: decisions=[" + ", ".join(spec.decisions) + "] #}\n"
    # a fallback, not "": validate warns when an optional field prints as empty text (template-empty-field)
    pos = ('{{ position.title if position and position.title else "本次" }}' if zh
           else '{{ position.title if position and position.title else "the role" }}')
    if zh:
        body = (
            f"{{% block subject %}}{{{{ company.name }}}}{pos}{subject}{{% endblock %}}\n\n"
            f"{{% block sms %}}{{{{ candidate.name }}}}您好，感谢参加{pos}面试。{line}{{% endblock %}}\n\n"
            "{% block dingtalk %}\n"
            f"### {subject} #{variant}\n\n"
            "{{ candidate.name }}您好：\n\n"
            f"感谢您参加{{{{ company.name }}}}{pos}岗位的面试。"
            "{% if feedback and feedback.strengths %}您在**{{ feedback.strengths | join(\"、\") }}**"
            "方面的表现给我们留下了深刻印象。{% endif %}"
            f"{line}\n\n"
            "{% if feedback and feedback.improvements %}**面试官的建议**\n\n- {{ feedback.improvements | join(\"\\n- \") }}\n\n{% endif %}"
            "{% if next_step and next_step.at %}- **下一步**：{{ next_step.at }}\n{% endif %}"
            "[欢迎对本次通知进行评价]({{ links.rating }})\n\n{{ company.name }} 招聘团队\n"
            "{% endblock %}\n\n"
            "{% block email %}\n"
            "{{ candidate.name }}您好：\n\n"
            f"感谢您参加{pos}岗位的面试。{line}\n"
            "{% if feedback and feedback.strengths %}您的优势：{{ feedback.strengths | join(\"、\") }}。\n{% endif %}"
            "{% if feedback and feedback.improvements %}建议：\n- {{ feedback.improvements | join(\"\\n- \") }}\n{% endif %}"
            "{% if feedback and feedback.note %}面试官留言：{{ feedback.note }}\n{% endif %}"
            "\n欢迎对本次通知进行评价：{{ links.rating }}\n{{ company.name }} 招聘团队\n退订：{{ links.unsubscribe }}\n"
            "{% endblock %}\n\n"
        )
    else:
        body = (
            f"{{% block subject %}}{subject}: {{{{ company.name }}}} {pos}{{% endblock %}}\n\n"
            f"{{% block sms %}}Hi {{{{ candidate.name }}}}, thank you for interviewing for {pos}. {line}{{% endblock %}}\n\n"
            "{% block dingtalk %}\n"
            f"### {subject} #{variant}\n\n"
            "Hi {{ candidate.name }},\n\n"
            f"Thank you for interviewing for {pos} at {{{{ company.name }}}}. "
            "{% if feedback and feedback.strengths %}Your **{{ feedback.strengths | join(\", \") }}** made a strong impression. {% endif %}"
            f"{line}\n\n"
            "{% if feedback and feedback.improvements %}**Suggestions**\n\n- {{ feedback.improvements | join(\"\\n- \") }}\n\n{% endif %}"
            "{% if next_step and next_step.at %}- **Next step**: {{ next_step.at }}\n{% endif %}"
            "[Rate this message]({{ links.rating }})\n\nThe {{ company.name }} recruiting team\n"
            "{% endblock %}\n\n"
            "{% block email %}\n"
            "Hi {{ candidate.name }},\n\n"
            f"Thank you for interviewing for {pos}. {line}\n"
            "{% if feedback and feedback.strengths %}What stood out: {{ feedback.strengths | join(\", \") }}.\n{% endif %}"
            "{% if feedback and feedback.improvements %}Suggestions:\n- {{ feedback.improvements | join(\"\\n- \") }}\n{% endif %}"
            "{% if feedback and feedback.note %}A note from your interviewer: {{ feedback.note }}\n{% endif %}"
            "\nRate this message: {{ links.rating }}\nThe {{ company.name }} recruiting team\n"
            "Unsubscribe: {{ links.unsubscribe }}\n"
            "{% endblock %}\n\n"
        )
    if spec.html:
        body += ("{% block email_html %}\n<p>{{ candidate.name }}</p>\n"
                 f"<p>{line}</p>\n"
                 "{% if feedback and feedback.strengths %}<p><strong>{{ feedback.strengths | join(\", \") }}</strong></p>{% endif %}\n"
                 "<p><a href=\"{{ links.rating }}\">{{ company.name }}</a></p>\n{% endblock %}\n\n")
    body += ("{% block webhook %}\n"
             f'{{"event": "{d}", "outcome_id": {{{{ id | tojson }}}}, '
             '"candidate": {{ candidate.name | tojson }}, "rating_url": {{ links.rating | tojson }}}\n'
             "{% endblock %}\n")
    return head + body


def write_templates(root: Path, specs: list[TemplateSpec]) -> int:
    n = 0
    for i, spec in enumerate(specs):
        base = root / (spec.name + ".j2")
        base.parent.mkdir(parents=True, exist_ok=True)
        base.write_text(template_text(spec, zh=False, variant=i), encoding="utf-8")
        (root / (spec.name + ".zh-CN.j2")).write_text(template_text(spec, zh=True, variant=i), encoding="utf-8")
        n += 2
    return n


# ---------------------------------------------------------------------------------------- rules

@dataclass
class _Pool:
    """Used value combinations per (decision, keyset): rules without `when` never share one."""

    used: dict = field(default_factory=dict)

    def take(self, rng: random.Random, decision: str, keys: tuple, tries: int = 30) -> dict | None:
        used = self.used.setdefault((decision, keys), set())
        for _ in range(tries):
            list_key = rng.choice(keys) if rng.random() < 0.45 else None
            values = {k: _pick(rng, k) for k in keys}
            if list_key is not None:
                want = rng.randint(2, LIST_KEYS.get(list_key, 2))
                alts = {values[list_key]} | {_pick(rng, list_key) for _ in range(want * 2)}
                alts = sorted(alts)[:want]
            else:
                alts = [values[list_key]] if list_key else None
            combos = []
            for alt in (alts or [None]):
                v = dict(values)
                if list_key is not None:
                    v[list_key] = alt
                combos.append(tuple(v[k] for k in keys))
            free = [c for c in combos if c not in used]
            if not free:
                continue
            used.update(free)
            if list_key is not None and len(free) > 1:
                out = dict(values)
                out[list_key] = [c[keys.index(list_key)] for c in free]
                return out
            return dict(zip(keys, free[0], strict=False))
        return None


def _templates_for(specs: list[TemplateSpec], decision: str) -> list[str]:
    return [s.name for s in specs if decision in s.decisions]


def generate_rules(n: int, specs: list[TemplateSpec], seed: int = 7) -> list[dict]:
    """`n` rules in evaluation order (see the module docstring), the last four being catch-alls."""
    rng = random.Random(seed)
    pool = _Pool()
    by_decision = {d: _templates_for(specs, d) for d in DECISIONS}
    specific: list[tuple] = []  # (sort key, sequence, [rule dicts])
    seq = 0
    target = max(n - 4, 0)
    made = 0
    attempts = 0
    while made < target and attempts < target * 20:
        attempts += 1
        d = rng.choices(DECISIONS, DECISION_WEIGHTS)[0]
        keys = rng.choice(KEYSETS[d])
        values = pool.take(rng, d, keys)
        if values is None:
            continue
        match = {"decision": d, **values}
        tmpl = rng.choice(by_decision[d])
        shown = " / ".join("|".join(v) if isinstance(v, list) else str(v) for v in values.values())
        base = {"id": f"{d}-{made:05d}", "description": f"{d} {shown}",
                "match": match, "template": tmpl}
        r = rng.random()
        if r < 0.15:
            base["channels"] = list(rng.choice(CHANNEL_ORDERS))
        if rng.random() < 0.10:
            base["timing"] = {"delay": rng.choice(["15m", "1h", "2h", "1h30m"])}
        if rng.random() < 0.03 and len(by_decision[d]) > 1:
            a, b = rng.sample(by_decision[d], 2)
            del base["template"]
            base["variants"] = [{"template": a, "weight": 1}, {"template": b, "weight": rng.choice([1, 2])}]
        group = [base]
        made += 1
        if made < target and rng.random() < 0.25:  # a guarded special case before this fallback
            guard = {"id": f"{d}-{made:05d}-w", "match": json.loads(json.dumps(match)), "when": random_when(rng, d),
                     "template": rng.choice(by_decision[d])}
            if rng.random() < 0.2:
                guard["priority"] = rng.choice([1, 5, 10])
            group.insert(0, guard)
            made += 1
        specific.append((-len(match), seq, group))
        seq += 1
    specific.sort(key=lambda t: (t[0], t[1]))
    rules = [r for _, _, group in specific for r in group]
    rules = rules[:target]
    catch = [
        {"id": "reject-catch-all", "match": {"decision": "reject"}, "template": by_decision["reject"][0]},
        {"id": "pass-catch-all", "match": {"decision": "pass"}, "template": by_decision["pass"][0]},
        {"id": "offer-catch-all", "match": {"decision": "offer"}, "template": by_decision["offer"][0]},
        {"id": "hold-catch-all", "match": {"decision": "hold"}, "when": "score != null",
         "template": by_decision["hold"][0]},
    ]
    return (rules + catch)[-n:] if n < 4 else rules + catch


WINDOWS = {
    "business-hours": {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-18:00", "holidays": "CN"},
    "evenings-weekends": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                          "hours": ["10:00-12:00", "19:00-21:00"]},
}
_DEFAULTS = (
    {"channels": ["dingtalk", "sms", "email"],
     "timing": {"delay": "30m", "window": "business-hours", "deadline": "24h", "escalate_after": "2h"}},
    {"channels": ["dingtalk", "email"], "timing": {"delay": "2h", "window": "business-hours", "deadline": "72h"}},
    {"channels": ["sms", "email"], "timing": {"delay": "1h", "window": "evenings-weekends", "deadline": "48h",
                                              "escalate_after": "4h"}},
    {"channels": ["email", "dingtalk", "sms"], "timing": {"delay": "10m", "window": "business-hours",
                                                          "deadline": "24h", "escalate_after": "1h"}},
)


def write_rules(root: Path, rules: list[dict], files: int = 10) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    per = -(-len(rules) // files)
    for i in range(files):
        chunk = rules[i * per:(i + 1) * per]
        doc: dict = {"version": 1,
                     "defaults": {"locale": "zh-CN", "timezone": "Asia/Shanghai", **_DEFAULTS[i % len(_DEFAULTS)]}}
        if i == 0:
            doc["windows"] = WINDOWS
        doc["rules"] = chunk
        text = ("# yaml-language-server: $schema=../schemas/rules.schema.json\n"
                f"# generated by bench/_gen.py: part {i + 1} of {files}\n"
                + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120, default_flow_style=None))
        p = root / f"{i:02d}-rules.yaml"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths


def write_deployment(root: Path, n_rules: int, n_templates: int = 100, files: int = 10, seed: int = 7) -> dict:
    """A deployment directory (rules/ and templates/) with `n_rules` rules; returns a short description."""
    specs = template_specs(n_templates)
    tfiles = write_templates(root / "templates", specs)
    rules = generate_rules(n_rules, specs, seed=seed)
    write_rules(root / "rules", rules, files)
    return {"rules": len(rules), "files": files, "templates": len(specs), "template_files": tfiles,
            "with_when": sum("when" in r for r in rules)}


# -------------------------------------------------------------------------------------- outcomes

def _name(rng: random.Random, en: bool) -> str:
    return rng.choice(EN_NAMES) if en else rng.choice(SURNAMES) + rng.choice(GIVEN)


def make_outcome(rng: random.Random, i: int, start: datetime) -> dict:
    d = rng.choices(DECISIONS, DECISION_WEIGHTS)[0]
    locale = rng.choices(LOCALES, LOCALE_WEIGHTS)[0]
    en = locale.startswith("en")
    occurred = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
    o: dict = {"id": f"ats-{100000 + i}-r1",
               "occurred_at": occurred.isoformat(timespec="seconds"),
               "decision": d, "stage": _pick(rng, "stage"), "role": _pick(rng, "role")}
    if d in ("reject", "hold"):
        o["reason"] = _pick(rng, "reason")
    if rng.random() < 0.92:
        o["score"] = rng.randrange(30, 100)
    o["approved"] = rng.random() >= 0.01
    cand = {"id": f"c-{i}", "name": _name(rng, en), "email": f"cand{i:06d}@example.{rng.choice(['com', 'cn'])}"}
    if rng.random() < 0.8:
        cand["phone"] = f"+86138{rng.randrange(10**8):08d}"
    if rng.random() < 0.7:
        cand["dingtalk_userid"] = f"dt{i:06d}"
    cand["locale"] = locale
    cand["timezone"] = rng.choices(TIMEZONES, TZ_WEIGHTS)[0]
    o["candidate"] = cand
    o["position"] = {"id": f"p-{rng.randrange(1, 60)}", "title": rng.choice(TITLES),
                     "department": rng.choice(DEPARTMENTS)}
    fb: dict = {"strengths": rng.sample(STRENGTHS, rng.randint(1, 3))}
    if d == "reject" or rng.random() < 0.3:
        fb["improvements"] = rng.sample(IMPROVEMENTS, rng.randint(0, 2))
    if rng.random() < 0.3:
        fb["note"] = "期待未来有合作机会" if not en else "We hope to stay in touch."
    o["feedback"] = fb
    if d in ("pass", "offer"):
        o["next_step"] = {"stage": "second_round", "at": "2026-12-04 14:00", "location": "线上视频面试",
                          "contact": "王老师 021-87654321"}
    attrs = {"source": _pick(rng, "attributes.source"), "level": rng.choice(LEVELS),
             "years_experience": rng.randrange(0, 15)}
    if rng.random() < 0.2:
        attrs["referral"] = True
    o["attributes"] = attrs
    return o


def make_outcomes(n: int, seed: int = 11) -> list[str]:
    """`n` JSON lines: realistic outcomes, about 0.5% re-sent ids and 0.3% broken records."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))
    lines = []
    for i in range(n):
        r = rng.random()
        if r < 0.005 and i > 10:
            lines.append(lines[rng.randrange(0, i)])  # the ATS re-sends an earlier outcome
            continue
        o = make_outcome(rng, i, start)
        if r > 0.997:
            kind = rng.randrange(3)
            if kind == 0:
                o["decision"] = "maybe"
            elif kind == 1:
                o["candidate"]["email"] = "not-an-address"
            else:
                o["score"] = "high"
        lines.append(json.dumps(o, ensure_ascii=False))
    return lines
