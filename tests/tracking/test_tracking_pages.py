"""The candidate pages come from Jinja2 templates (engine/tracking/templates, autoescaped) and are byte for
byte the pages herald served before they were templates (tests/tracking/golden/pages.json was written by the
f-string version)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.tracking import pages as p

GOLDEN = json.loads((Path(__file__).parent / "golden" / "pages.json").read_text("utf-8"))


def _pages() -> dict[str, tuple[str, int]]:
    def body(r):
        return r.body.decode("utf-8"), r.status_code

    out = {}
    for loc in ("zh-CN", "en"):
        t = p.texts_for(loc)
        out[f"rating-{loc}"] = body(p.rating_form(t))
        out[f"rating-{loc}-filled"] = body(p.rating_form(t, score=4, comment="很好 <b>&</b>", error=t["too_long"],
                                                         status=422))
        out[f"unsubscribe-{loc}"] = body(p.unsubscribe_form(t))
        for tk, bk in (("thanks", "thanks_body"), ("already", "already_body"), ("expired", "expired_body"),
                       ("unsub_done", "unsub_done_body")):
            out[f"{tk}-{loc}"] = body(p.message_page(t, tk, bk, 410 if tk == "expired" else 200))
    out["invalid"] = body(p.invalid_page())
    return out


PAGES = _pages()


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_byte_for_byte_as_before(name):
    html, status = GOLDEN[name]
    assert PAGES[name] == (html, status)


def test_the_pages_are_templates():
    names = set(p._ENV.list_templates())
    assert {"page.html.j2", "rating.html.j2", "message.html.j2", "invalid.html.j2", "unsubscribe.html.j2"} <= names
    assert p._ENV.autoescape is True


def test_what_the_candidate_typed_is_escaped():
    html = p.rating_form(p.texts_for("en"), comment='</textarea><script>alert("x")</script>', error="<b>").body
    assert b"<script>" not in html and b"&lt;/textarea&gt;&lt;script&gt;" in html and b"&lt;b&gt;" in html
