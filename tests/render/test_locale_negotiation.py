"""Locale negotiation (engine.render.locales): the candidate's locale and its parents, the bare file, the rule's
locale only when no bare file exists; and the example deployment's English candidates get the English files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.render.locales import BARE, chain, preferences
from engine.render.templates import TemplateStore

REPO = Path(__file__).resolve().parents[2]
HERALD = Path(sys.executable).with_name("herald")
HEADER = "{# herald: decisions=[reject] #}\n"


@pytest.mark.parametrize("tag, expected", [
    ("en-US", ("en-us", "en")),
    ("EN_us", ("en-us", "en")),
    ("en", ("en",)),
    ("zh-Hant-TW", ("zh-hant-tw", "zh-tw", "zh-hant", "zh")),
    ("zh-TW", ("zh-tw", "zh-hant", "zh")),        # CLDR's likely script: zh-TW is written in Hant
    ("zh-CN", ("zh-cn", "zh-hans", "zh")),
    ("de-DE-1996", ("de-de-1996", "de-de", "de")),
    ("", ()),
])
def test_chain_is_the_tag_then_its_parents(tag: str, expected: tuple) -> None:
    assert chain(tag) == expected


def _store(tmp_path: Path, locales: list) -> TemplateStore:
    for loc in locales:
        name = "x.j2" if loc is None else f"x.{loc}.j2"
        (tmp_path / "r").mkdir(exist_ok=True)
        (tmp_path / "r" / name).write_text(HEADER + "{% block sms %}" + str(loc) + "{% endblock %}", encoding="utf-8")
    return TemplateStore(tmp_path)


@pytest.mark.parametrize("files, candidate, rule, expected", [
    ([None, "zh-CN"], "en", "zh-CN", None),              # the bare file before the rule's locale
    ([None, "zh-CN"], "en-US", "zh-CN", None),
    ([None, "zh-CN", "en"], "en-US", "zh-CN", "en"),     # parent first
    ([None, "zh-CN", "en-US"], "en-US", "zh-CN", "en-US"),
    (["zh-CN", "en"], "fr", "zh-CN", "zh-CN"),          # no bare file: the rule's locale
    ([None, "zh-Hant", "zh-CN"], "zh-Hant-TW", "zh-CN", "zh-Hant"),
    ([None, "zh-Hant", "zh-CN"], "zh-TW", "zh-CN", "zh-Hant"),
    ([None, "zh-CN"], None, "zh-CN", "zh-CN"),           # no candidate locale: the rule's, then the bare file
    ([None, "en"], None, "zh-CN", None),
    (["en"], None, "zh-CN", "NO FILE"),                  # nothing serves: no file at all
])
def test_resolution_order(tmp_path: Path, files: list, candidate, rule, expected) -> None:
    store = _store(tmp_path, files)
    got = store.resolve("r/x", preferences(candidate, rule))
    if expected == "NO FILE":
        assert got is None
    else:
        assert got is not None and got.locale == expected


def test_preferences_place_the_bare_file() -> None:
    assert preferences("en", "zh-CN") == ("en", BARE, "zh-CN")
    assert preferences(None, "zh-CN") == ("zh-CN", BARE)


def test_example_deployment_english_candidates_get_the_english_files() -> None:
    """Every en / en-US candidate of examples/outcomes.jsonl is served an English (bare) file, seen from the CLI."""
    proc = subprocess.run([str(HERALD), "dry-run", "--outcomes", "examples/outcomes.jsonl", "--format", "jsonl",
                           "--now", "2026-11-25T10:00:00+08:00"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    outcomes = {}
    for line in (REPO / "examples/outcomes.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            outcomes.setdefault(record["id"], record)
    english = 0
    for line in proc.stdout.splitlines():
        plan = json.loads(line)
        record = outcomes.get(plan["outcome"]) or {}
        tag = (record.get("candidate") or {}).get("locale")
        if not plan.get("template") or not isinstance(tag, str) or not tag.startswith("en"):
            continue
        english += 1
        assert plan["locale"] is None and plan["file"] == f"templates/{plan['template']}.j2", plan
        text = (REPO / plan["file"]).read_text(encoding="utf-8")
        assert not any("\u4e00" <= c <= "\u9fff" for c in text), f"{plan['file']} is not English"
    assert english >= 40
