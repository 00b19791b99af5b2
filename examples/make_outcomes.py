#!/usr/bin/env python3
"""Generates examples/outcomes.jsonl: 240 interview outcomes for the 示例科技 deployment, then 5 broken lines.

Deterministic (seeded): running it again writes the same file. Run from anywhere:

    python examples/make_outcomes.py            # writes examples/outcomes.jsonl
    python examples/make_outcomes.py -o -       # to stdout

The mix: mostly zh-CN candidates, some en and a few en-US; every decision, stage, role and reason the
rules in rules/ route on; some candidates without a phone or a DingTalk account; some results not yet
approved (approved: false); a few ATS re-sends of an earlier id; occurred_at across November 2026 in
+08:00. The last 5 lines are broken on purpose (not JSON; decision "maybe"; no candidate; score
"high"; an unknown top-level field), to show that herald refuses them with a message.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import date, timedelta
from pathlib import Path

SEED = 20261120
COUNT = 240
DUPLICATES = 6

TECH = ("backend", "frontend", "data", "qa")
SALES = ("sales", "account_manager")
FUNCTIONAL = ("hr", "finance", "admin")

POSITIONS = {  # role: (zh title, en title, zh department, en department)
    "backend": ("后端开发工程师", "Backend Engineer", "研发中心", "R&D"),
    "frontend": ("前端开发工程师", "Frontend Engineer", "研发中心", "R&D"),
    "data": ("数据工程师", "Data Engineer", "数据平台部", "Data Platform"),
    "qa": ("测试开发工程师", "QA Engineer", "质量保障部", "Quality Assurance"),
    "sales": ("销售经理", "Sales Manager", "销售部", "Sales"),
    "account_manager": ("大客户经理", "Key Account Manager", "销售部", "Sales"),
    "hr": ("招聘专员", "Recruiter", "人力资源部", "Human Resources"),
    "finance": ("财务分析师", "Financial Analyst", "财务部", "Finance"),
    "admin": ("行政专员", "Office Administrator", "行政部", "Administration"),
    "legal": ("法务专员", "Legal Counsel", "法务部", "Legal"),  # no role rule: the catch-alls serve it
}

# Strengths are noun phrases ("您在{strengths}方面的表现…", "Your {strengths} made…");
# improvements are things to do.
STRENGTHS = {
    "tech": {
        "zh": ["逻辑思维", "编程基础", "算法功底", "代码规范意识", "问题拆解能力", "学习能力", "技术热情"],
        "en": ["logical thinking", "coding fundamentals", "grasp of algorithms", "clean code habits",
               "problem breakdown", "quick learning", "enthusiasm for technology"],
    },
    "sales": {
        "zh": ["沟通表达", "客户案例分享", "抗压能力", "目标感", "亲和力"],
        "en": ["communication", "customer stories", "resilience", "drive for targets", "rapport with people"],
    },
    "functional": {
        "zh": ["细致严谨", "沟通协调", "流程意识", "Excel 数据处理", "服务意识"],
        "en": ["attention to detail", "coordination", "process thinking", "Excel skills", "service mindset"],
    },
}
IMPROVEMENTS = {
    "lacks_project_experience": {
        "zh": ["补充大型项目经验", "多参与从设计到上线的完整项目", "积累线上问题排查经验"],
        "en": ["gaining experience with larger projects", "taking a project from design to production",
               "more practice debugging production issues"],
    },
    "skills_gap": {
        "zh": ["深入学习分布式系统", "加强数据结构与算法练习", "补充自动化测试实践", "熟悉主流框架的底层原理"],
        "en": ["learning more about distributed systems", "more practice with data structures and algorithms",
               "hands-on work with test automation", "understanding how the main frameworks work inside"],
    },
    "industry_knowledge": {
        "zh": ["补充行业知识", "多关注行业趋势和竞争格局", "研究重点客户的业务模式"],
        "en": ["building industry knowledge", "following industry trends and the competition",
               "studying how key customers do business"],
    },
    "communication": {
        "zh": ["表达时先讲结论再讲依据", "多用具体案例支撑观点", "练习倾听与提问"],
        "en": ["leading with the conclusion, then the reasons", "backing points with concrete cases",
               "practising listening and asking questions"],
    },
    "culture_fit": {
        "zh": ["进一步明确自己期待的团队节奏", "多了解跨部门协作的方式"],
        "en": ["getting clearer on the team pace you want", "learning more about cross-team work"],
    },
}
NOTES = {
    "zh": ["期待未来有合作机会", "感谢你的认真准备", "希望很快再见到你"],
    "en": ["We hope our paths cross again.", "Thank you for preparing so carefully.", "Hope to see you again soon."],
}
REASONS = {
    "tech": [("lacks_project_experience", 35), ("skills_gap", 35), ("culture_fit", 6), ("compensation", 6),
             ("position_filled", 8), ("communication", 5), ("overqualified", 5)],
    "sales": [("industry_knowledge", 35), ("communication", 30), ("culture_fit", 10), ("compensation", 10),
              ("position_filled", 8), ("overqualified", 7)],
    "functional": [("culture_fit", 30), ("skills_gap", 25), ("communication", 15), ("compensation", 10),
                   ("position_filled", 12), ("overqualified", 8)],
}
HOLD_REASONS = [("position_filled", 50), ("compensation", 25), ("overqualified", 25)]

ZH_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈"
ZH_GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "晓东", "思远", "子涵",
            "雨萱", "浩然", "一鸣", "佳怡", "欣怡", "志强", "建华", "文博", "梓轩", "雪梅", "海燕", "俊杰", "宇航"]
ZH_PINYIN = {"王": "wang", "李": "li", "张": "zhang", "刘": "liu", "陈": "chen", "杨": "yang", "黄": "huang", "赵": "zhao",
             "吴": "wu", "周": "zhou", "徐": "xu", "孙": "sun", "马": "ma", "朱": "zhu", "胡": "hu", "郭": "guo", "何": "he",
             "高": "gao", "林": "lin", "罗": "luo", "郑": "zheng", "梁": "liang", "谢": "xie", "宋": "song", "唐": "tang",
             "许": "xu", "韩": "han", "冯": "feng", "邓": "deng", "曹": "cao", "彭": "peng", "曾": "zeng", "肖": "xiao",
             "田": "tian", "董": "dong", "袁": "yuan", "潘": "pan", "蒋": "jiang", "蔡": "cai", "余": "yu", "杜": "du",
             "叶": "ye", "程": "cheng", "苏": "su", "魏": "wei", "吕": "lv", "丁": "ding", "任": "ren", "沈": "shen"}
EN_FIRST = ["Emma", "Liam", "Olivia", "Noah", "Ava", "James", "Sophia", "Lucas", "Mia", "Ethan", "Grace", "Daniel",
            "Chloe", "Ryan", "Hannah", "Jack", "Priya", "Arjun", "Wei Ling", "Kenji"]
EN_LAST = ["Clarke", "Smith", "Brown", "Taylor", "Wilson", "Davies", "Evans", "Thomas", "Walker", "Wright", "Tan",
           "Lim", "Patel", "Nakamura", "Müller", "García", "O'Brien", "Nguyen"]
EN_TZ = {"en": ["Asia/Singapore", "Europe/London", "Asia/Hong_Kong", "Asia/Shanghai", "Europe/Berlin"],
         "en-US": ["America/Los_Angeles", "America/New_York", "America/Chicago"]}
SOURCES = [("website", 45), ("referral", 20), ("headhunter", 15), ("campus", 15), ("job_board", 5)]
LOCATIONS = {
    "zh": ["北京市海淀区中关村大街1号 示例科技大厦 5 层", "上海市浦东新区世纪大道100号 12 层", "线上视频面试（腾讯会议，链接见邮件）"],
    "en": ["5/F, Example Tech Tower, 1 Zhongguancun Street, Beijing", "Online (video call; the link follows by email)"],
}
CONTACTS = {"zh": ["李老师 010-12345678", "王老师 021-87654321", "招聘组 hr@example.com"],
            "en": ["Ms Li, +86 10 1234 5678", "recruiting team, hr@example.com"]}


def weighted(rng: random.Random, pairs):
    values, weights = zip(*pairs, strict=False)
    return rng.choices(values, weights=weights, k=1)[0]


def family(role: str) -> str:
    return "tech" if role in TECH else "sales" if role in SALES else "functional"


def make_candidate(rng: random.Random, n: int) -> dict:
    locale = weighted(rng, [("zh-CN", 80), ("en", 15), ("en-US", 5)])
    if locale == "zh-CN":
        surname = rng.choice(ZH_SURNAMES)
        name = surname + rng.choice(ZH_GIVEN)
        handle = f"{ZH_PINYIN[surname]}{n:03d}"
        phone = f"+86{rng.choice(['138', '139', '150', '186', '177'])}{rng.randrange(10**8):08d}"
        timezone = "Asia/Shanghai"
    else:
        first, last = rng.choice(EN_FIRST), rng.choice(EN_LAST)
        name = f"{first} {last}"
        handle = f"{first.split()[0].lower()}.{n:03d}"
        phone = (f"+1{rng.randrange(200, 999)}{rng.randrange(10**7):07d}" if locale == "en-US"
                 else f"+65{rng.randrange(8, 10)}{rng.randrange(10**7):07d}")
        timezone = rng.choice(EN_TZ[locale])
    candidate = {"id": f"c-{1000 + n}", "name": name, "email": f"{handle}@example.com"}
    if rng.random() < 0.88:
        candidate["phone"] = phone
    if rng.random() < (0.7 if locale == "zh-CN" else 0.3):
        candidate["dingtalk_userid"] = f"dt{n:04d}"
    candidate["locale"] = locale
    candidate["timezone"] = timezone
    return candidate


def make_outcome(rng: random.Random, n: int) -> dict:
    role = weighted(rng, [(r, 2 if r == "legal" else 10) for r in POSITIONS])
    fam = family(role)
    decision = weighted(rng, [("reject", 50), ("pass", 25), ("offer", 10), ("hold", 15)])
    if decision == "offer":
        stage = weighted(rng, [("final", 85), ("second_round", 15)])
    elif decision == "pass":
        stage = weighted(rng, [("first_round", 60), ("second_round", 40)])
    else:
        stage = weighted(rng, [("first_round", 50), ("second_round", 30), ("final", 20)])
    candidate = make_candidate(rng, n)
    lang = "zh" if candidate["locale"] == "zh-CN" else "en"
    # Interviews happen mostly on weekdays (2026-11-01 is a Sunday), in office hours and a little after.
    weekdays = [d for d in range(1, 31) if date(2026, 11, d).weekday() < 5]
    day = rng.choice(weekdays) if rng.random() < 0.9 else rng.randint(1, 30)
    hour, minute = weighted(rng, [(h, 1 if h in (8, 20, 21) else 4) for h in range(8, 22)]), rng.choice([0, 5, 10, 15, 20, 30, 40, 45, 50])
    short = {"first_round": "r1", "second_round": "r2", "final": "r3"}[stage]

    outcome = {
        "id": f"ats-{98000 + n}-{short}",
        "occurred_at": f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:00+08:00",
        "decision": decision,
        "stage": stage,
        "role": role,
    }
    if decision == "reject":
        outcome["reason"] = weighted(rng, REASONS[fam])
    elif decision == "hold":
        outcome["reason"] = weighted(rng, HOLD_REASONS)
    if rng.random() < 0.95:
        low, high = {"reject": (40, 88), "pass": (68, 95), "offer": (80, 98), "hold": (65, 88)}[decision]
        outcome["score"] = rng.randint(low, high)
    if rng.random() < 0.06:
        outcome["approved"] = False
    elif rng.random() < 0.5:
        outcome["approved"] = True
    outcome["candidate"] = candidate
    zh_title, en_title, zh_dept, en_dept = POSITIONS[role]
    outcome["position"] = {"id": f"p-{list(POSITIONS).index(role) + 10}",
                           "title": zh_title if lang == "zh" else en_title,
                           "department": zh_dept if lang == "zh" else en_dept}

    if rng.random() < 0.9:
        feedback = {"strengths": rng.sample(STRENGTHS[fam][lang], k=rng.randint(1, 2))}
        reason = outcome.get("reason")
        if decision == "reject" and reason in IMPROVEMENTS and rng.random() < 0.8:
            feedback["improvements"] = rng.sample(IMPROVEMENTS[reason][lang], k=rng.randint(1, 2))
        if rng.random() < 0.25:
            feedback["note"] = rng.choice(NOTES[lang])
        outcome["feedback"] = feedback

    if decision in ("pass", "offer") and rng.random() < 0.85:
        when = date(2026, 11, day) + timedelta(days=rng.randint(3, 7))
        nxt = {"stage": {"first_round": "second_round", "second_round": "final"}.get(stage, "onboarding"),
               "at": f"{when.isoformat()} {rng.choice(['10:00', '14:00', '15:30'])}"}
        if rng.random() < 0.8:
            nxt["location"] = rng.choice(LOCATIONS[lang])
        nxt["contact"] = rng.choice(CONTACTS[lang])
        outcome["next_step"] = nxt

    outcome["attributes"] = {"source": weighted(rng, SOURCES)}
    if rng.random() < 0.3:
        outcome["attributes"]["requisition"] = f"REQ-2026-{rng.randint(100, 999)}"
    return outcome


def broken_lines() -> list[str]:
    """Five lines that herald must refuse, each for a different reason."""
    good = {"id": "ats-99990-r1", "occurred_at": "2026-11-30T16:00:00+08:00", "decision": "reject",
            "stage": "first_round", "role": "backend", "reason": "skills_gap", "score": 60,
            "candidate": {"name": "赵敏", "email": "zhaomin@example.com", "locale": "zh-CN"}}
    lines = ['{"id": "ats-99991-r1", "decision": "reject", "candidate": {"name": "钱多多"']   # cut off: not JSON
    lines.append(json.dumps(dict(good, id="ats-99992-r1", decision="maybe"), ensure_ascii=False))
    no_candidate = dict(good, id="ats-99993-r1")
    del no_candidate["candidate"]
    lines.append(json.dumps(no_candidate, ensure_ascii=False))
    lines.append(json.dumps(dict(good, id="ats-99994-r1", score="high"), ensure_ascii=False))
    lines.append(json.dumps(dict(good, id="ats-99995-r1", department="研发中心"), ensure_ascii=False))
    return lines


def generate() -> list[str]:
    rng = random.Random(SEED)
    outcomes = [make_outcome(rng, n) for n in range(COUNT - DUPLICATES)]
    lines = [json.dumps(o, ensure_ascii=False) for o in outcomes]
    # ATS re-sends: an earlier id again, inserted after the original (the same record, or a later
    # edit of it); herald must send one message per id.
    for _ in range(DUPLICATES):
        k = rng.randrange(len(outcomes) - 20)
        again = dict(outcomes[k])
        if rng.random() < 0.5:
            again["occurred_at"] = again["occurred_at"][:11] + "23:59:00+08:00"
        lines.insert(rng.randrange(k + 1, len(lines) + 1), json.dumps(again, ensure_ascii=False))
    return lines + broken_lines()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(Path(__file__).with_name("outcomes.jsonl")),
                        help="file to write, or - for stdout (default: examples/outcomes.jsonl)")
    args = parser.parse_args(argv)
    text = "\n".join(generate()) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
