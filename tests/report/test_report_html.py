"""The HTML report comes from Jinja2 templates (engine/report/templates, autoescaped) and is the page the
f-string version wrote: tests/report/golden/ holds its output for four reports; only the spelling of two
escapes differs (markupsafe writes &#39; and &#34; where html.escape wrote &#x27; and &quot;)."""
from __future__ import annotations

import dataclasses
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_support import DAY, T0, build_variants, open_store

from engine.report import Filters, build_report
from engine.report.html import _ENV, render_html

GOLDEN = Path(__file__).parent / "golden"
NOW = T0 + 30 * DAY


@pytest.fixture(scope="module")
def reports(scenario, tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    empty = d / "empty.db"
    open_store(empty).close()
    cases = {
        "full": build_report(scenario, Filters(), timezone_name="Asia/Shanghai", now=NOW),
        "filtered": build_report(scenario, Filters(rules=("tech",), channel="email", since=T0, until=T0 + 5 * DAY),
                                 timezone_name="UTC", now=NOW),
        "variants": build_report(build_variants(d / "v.db"), Filters(), now=NOW),
        "empty": build_report(empty, Filters(), now=NOW),
    }
    return {name: render_html(dataclasses.replace(rep, store="herald.db")) for name, rep in cases.items()}


class _Events(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list[tuple] = []

    def handle_starttag(self, tag, attrs):
        self.events.append(("start", tag, tuple(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.events.append(("empty", tag, tuple(attrs)))

    def handle_endtag(self, tag):
        self.events.append(("end", tag))

    def handle_data(self, data):
        self.events.append(("data", data))


def _structure(html: str) -> list[tuple]:
    parser = _Events()
    parser.feed(html)
    parser.close()
    return parser.events


@pytest.mark.parametrize("name", ["full", "filtered", "variants", "empty"])
def test_the_page_as_before(reports, name):
    before = (GOLDEN / f"report-{name}.html").read_text("utf-8")
    now = reports[name]
    assert now == before.replace("&#x27;", "&#39;").replace("&quot;", "&#34;")  # byte for byte but two escapes
    assert _structure(now) == _structure(before)  # and the same elements, attributes and text


def test_the_cases_cover_every_part(reports):
    full, variants, empty = reports["full"], reports["variants"], reports["empty"]
    assert 'id="failures"' in full and "<polyline" in full and 'class="funnel"' in full
    assert 'id="variants"' in variants and "No delivered notifications in this period." in variants
    assert "No notifications match." in empty


def test_the_report_is_templates_and_escapes_what_it_shows(scenario):
    assert {"report.html.j2", "charts.svg.j2"} <= set(_ENV.list_templates()) and _ENV.autoescape is True
    rep = build_report(scenario, Filters(), now=NOW)
    html = render_html(dataclasses.replace(rep, store='<script>alert("x")</script>'))
    assert "<script>" not in html and "&lt;script&gt;" in html
