"""Link tracking through a real daemon: only links written in the template source, only in HTML hrefs, become
signed click redirects; URLs from outcome data never do; plain text keeps the real URL; an expired click token
does not redirect."""
from __future__ import annotations

import html
import re

import httpx
import pytest

from daemon_support import make_deployment, outbox, outcome, post, wait_for
from engine.tracking import tokens as tr

pytestmark = pytest.mark.slow
SECRET = "links-test-tracking-secret-0123456789"

TEMPLATE = """{# herald: decisions=[reject, pass, offer, hold] #}
{% block subject %}Interview result{% endblock %}
{% block email %}Hello {{ candidate.name }}, see https://jobs.example.com/open and {{ attributes.site }}{% endblock %}
{% block email_html %}<p>Hello {{ candidate.name }}</p>
<a href="https://jobs.example.com/open">open roles</a>
<a href="{{ attributes.site }}">your portal</a>{% endblock %}
{% block sms %}Hello {{ candidate.name }}{% endblock %}
"""


@pytest.fixture
def tracked(tmp_path, monkeypatch, daemons):
    import engine.daemon.serve as serve_module

    monkeypatch.setattr(serve_module, "_tracking_key", lambda cfg, required: SECRET)
    root = make_deployment(tmp_path)
    (root / "templates" / "any" / "generic.j2").write_text(TEMPLATE)
    return root, daemons(root)


def test_only_template_links_in_html_are_tracked(tracked):
    root, d = tracked
    evil = "https://evil.example/phish"
    post(d.url, outcome("ln-1", candidate={"name": f"Ann {evil}", "email": "ann@example.com"},
                        attributes={"site": "https://portal.example.org/me"}))
    wait_for(lambda: [m for m in outbox(root) if m["notification"] == "ln-1#1"])
    [msg] = outbox(root)
    # plain text: every URL as written, nothing signed
    assert "/t/c/" not in msg["body"]
    assert "https://jobs.example.com/open" in msg["body"] and evil in msg["body"]
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]*)"', msg["html"])]
    tracked_links = [h for h in hrefs if h.startswith(d.url + "/t/c/")]
    assert len(tracked_links) == 1  # the template's own link
    token = tracked_links[0].rsplit("/", 1)[1]
    assert tr.verify_token(SECRET, token, tr.CLICK).url == "https://jobs.example.com/open"
    assert "https://portal.example.org/me" in hrefs  # from the outcome: left as it is, never signed
    assert evil not in "".join(tracked_links)
    r = httpx.get(tracked_links[0], follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "https://jobs.example.com/open"


def test_an_expired_click_token_does_not_redirect(tracked):
    _root, d = tracked
    post(d.url, outcome("ln-2"))
    wait_for(lambda: d.runtime.store.get_notification("ln-2#1") is not None)
    old = tr.click_url("https://jobs.example.com/open", "ln-2#1", "email", d.url, SECRET, issued_at=1_000_000_000)
    r = httpx.get(old, follow_redirects=False)
    assert r.status_code == 410 and "location" not in r.headers
    assert "https://jobs.example.com/open" not in r.text
