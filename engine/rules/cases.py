"""`herald test`: rule test cases from rules/tests/*.yaml, run through the real pipeline, expected against actual."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import Any

from engine.config.settings import display_path
from engine.rules.suggest import did_you_mean
from engine.rules.yamlpos import load_yaml_file
from engine.errors import Diagnostic, Loc
from engine.pipeline import Pipeline
from engine.routing.router import why_not
from engine.schedule.timing import parse_instant

CASE_KEYS = ("name", "outcome", "expect", "now")
EXPECT_KEYS = ("rule", "template", "channels", "status", "send_at", "locale", "late", "variant")
NEUTRAL_CANDIDATE = {"id": "c-test", "name": "测试候选人", "email": "candidate@example.com",
                     "phone": "+8613800000000", "dingtalk_userid": "test01", "locale": "zh-CN",
                     "timezone": "Asia/Shanghai"}
NEUTRAL_POSITION = {"id": "p-test", "title": "测试岗位", "department": "测试部门"}


@dataclass(frozen=True)
class Case:
    """One test case as written, with where it was written."""

    name: str
    outcome: dict
    expect: dict
    now: datetime | None
    loc: Loc


@dataclass(frozen=True)
class CaseResult:
    case: Case
    failures: tuple  # human lines: "rule: expected x, got y"

    @property
    def passed(self) -> bool:
        return not self.failures


def case_files(pipeline_rules: tuple) -> list[Path]:
    """rules/tests/*.yaml under every configured rules directory, by name."""
    files: list[Path] = []
    for entry in pipeline_rules:
        tests = Path(entry) / "tests" if Path(entry).is_dir() else Path(entry).parent / "tests"
        if tests.is_dir():
            files += sorted(p for p in tests.iterdir() if p.suffix in (".yaml", ".yml"))
    return sorted(set(files))


def load_cases(path: Path) -> tuple[list[Case], list[Diagnostic]]:
    """Cases of one file; problems in the file itself come back located."""
    doc, diags = load_yaml_file(path, display=display_path(path))
    cases: list[Case] = []
    if doc.data is None:
        return cases, diags
    if not isinstance(doc.data, list):
        return cases, diags + [doc.loc().error("bad-type", "a test file is a list of cases (- name: ...)")]
    for i, raw in enumerate(doc.data):
        loc = doc.loc((i,))
        if not isinstance(raw, dict):
            diags.append(loc.error("bad-type", "a case is a mapping with name, outcome and expect"))
            continue
        bad = False
        for key in raw:
            if key not in CASE_KEYS:
                diags.append(doc.loc((i, key), key=True).error(
                    "unknown-key", f'unknown key "{key}" in a test case{did_you_mean(str(key), CASE_KEYS)}'))
                bad = True
        expect = raw.get("expect")
        if not isinstance(raw.get("outcome"), dict) or not isinstance(expect, dict) or not expect:
            diags.append(loc.error("bad-case", "a case needs an `outcome` mapping and a non-empty `expect` mapping"))
            continue
        for key in expect:
            if key not in EXPECT_KEYS:
                diags.append(doc.loc((i, "expect", key), key=True).error(
                    "unknown-key", f'unknown key "{key}" in expect{did_you_mean(str(key), EXPECT_KEYS)}'))
                bad = True
        now = None
        if "now" in raw:
            now = parse_instant(raw["now"]) if isinstance(raw["now"], str) else None
            if now is None:
                diags.append(doc.loc((i, "now")).error("bad-value", "now: write an RFC 3339 time with an offset"))
                bad = True
        if bad:
            continue
        name = str(raw.get("name") or f"case {i + 1}")
        cases.append(Case(name, raw["outcome"], expect, now, loc))
    return cases, diags


def neutral_outcome(partial: dict, index: int, now: datetime) -> dict:
    """The case's outcome with neutral values for what it leaves out."""
    out: dict = {"id": f"case-{index}", "occurred_at": now.isoformat(),
                 "candidate": copy.deepcopy(NEUTRAL_CANDIDATE), "position": copy.deepcopy(NEUTRAL_POSITION)}
    out.update(copy.deepcopy(partial))
    return out


def _same_instant(expected: Any, actual: datetime | None) -> bool:
    want = parse_instant(expected) if isinstance(expected, str) else None
    return want is not None and actual is not None and want.astimezone(UTC) == actual.astimezone(UTC)


def run_case(pipeline: Pipeline, case: Case, index: int, default_now: datetime) -> CaseResult:
    now = case.now or default_now
    pipeline.now = now
    outcome = neutral_outcome(case.outcome, index, now)
    plan = next(pipeline.run_records([outcome]))
    failures = []
    actual = {"rule": plan.rule, "template": plan.template, "channels": list(plan.channels),
              "status": plan.status, "locale": plan.locale, "late": plan.late, "variant": plan.variant}
    for key, want in case.expect.items():
        if key == "send_at":
            if not _same_instant(want, plan.send_at):
                shown = plan.send_at.isoformat() if plan.send_at else None
                failures.append(f"send_at: expected {want}, got {shown}")
            continue
        got = actual.get(key)
        if got != want:
            failures.append(f"{key}: expected {want!r}, got {got!r}")
            if key == "rule" and want:
                rule = next((r for r in pipeline.router.rules if r.id == want), None)
                if rule is None:
                    failures.append(f"  (no rule has the id {want!r})")
                else:
                    reason = why_not(rule, outcome)
                    failures.append(f"  {want} did not match: {reason}" if reason else
                                    f"  {want} matches, but {plan.rule} comes first")
    if plan.status == "invalid" and case.expect.get("status") != "invalid":
        failures.append(f"the outcome is invalid: {plan.error}")
    return CaseResult(case, tuple(failures))


def run_all(pipeline: Pipeline, files: list[Path], default_now: datetime) -> tuple[list[CaseResult], list[Diagnostic]]:
    results, diags = [], []
    index = 0
    for path in files:
        cases, problems = load_cases(path)
        diags += problems
        for case in cases:
            index += 1
            results.append(run_case(pipeline, case, index, default_now))
    return results, diags
