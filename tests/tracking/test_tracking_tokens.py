"""Signed tracking tokens and link building: round trip, tampering, wrong secret, expiry, kind confusion,
click targets that cannot be changed, link rewriting, the open pixel, the tracking secret."""
from __future__ import annotations

import base64
import html as htmllib
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.settings import Config, TrackingSettings, load_config
from engine.tracking import tokens as tr
from engine.model import Message
from engine.tracking.tokens import (CLICK, MAX_AGE, OPEN, RATE, UNSUBSCRIBE, decode_token, make_token, verify_token)

S = "a-test-secret-of-32-characters!!"
NOW = 1_800_000_000.0
BASE = "https://herald.example.com"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


@pytest.mark.parametrize("kind, url", [(OPEN, None), (CLICK, "https://a.example/jobs?id=1&x=2"), (RATE, None),
                                       (UNSUBSCRIBE, None)])
def test_round_trip(kind, url):
    tok = make_token(S, kind, "ats-98123-r1#1", "email", url=url, issued_at=NOW)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", tok)  # URL-safe, no padding
    p = verify_token(S, tok, kind, now=NOW + 60)
    assert (p.kind, p.notification_id, p.channel, p.issued_at, p.url) == (kind, "ats-98123-r1#1", "email", int(NOW), url)


def test_a_rating_token_is_short_enough_for_a_text_message():
    assert len(make_token(S, RATE, "ats-98123-r1#1", "sms", issued_at=NOW)) <= 60


@settings(max_examples=60, deadline=None)
@given(nid=st.text(min_size=1, max_size=200), channel=st.one_of(st.none(), st.text(max_size=20)),
       path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-_.?=&%", max_size=300))
def test_round_trip_any_ids(nid, channel, path):
    url = f"https://a.example/{path}"
    p = verify_token(S, make_token(S, CLICK, nid, channel, url=url, issued_at=NOW), CLICK, now=NOW)
    assert (p.notification_id, p.channel, p.url) == (nid, channel or None, url)


def test_every_altered_byte_is_refused():
    tok = make_token(S, CLICK, "n#1", "email", url="https://a.example/", issued_at=NOW)
    raw = _raw(tok)
    for i in range(len(raw)):
        for flip in (0x01, 0x80):
            bad = bytearray(raw)
            bad[i] ^= flip
            assert decode_token(S, _b64(bytes(bad))) is None, i
    assert decode_token(S, tok[:-1]) is None and decode_token(S, tok + "A") is None
    for junk in ("", "!!!", "a" * 10, "a.b", tok + "="):
        assert decode_token(S, junk) is None


def test_wrong_secret_and_forgery():
    tok = make_token(S, RATE, "n#1", "email", issued_at=NOW)
    assert verify_token("another-secret-32-characters-xx!", tok, RATE, now=NOW) is None
    # a payload signed with a guessed MAC (all zeros) or the MAC of another token is refused
    raw = _raw(tok)
    assert decode_token(S, _b64(raw[:-16] + bytes(16))) is None
    other = _raw(make_token(S, RATE, "n#2", "email", issued_at=NOW))
    assert decode_token(S, _b64(raw[:-16] + other[-16:])) is None


def test_expiry_and_future_tokens():
    tok = make_token(S, RATE, "n#1", "email", issued_at=NOW)
    assert verify_token(S, tok, RATE, now=NOW + MAX_AGE[RATE] - 1) is not None
    assert verify_token(S, tok, RATE, now=NOW + MAX_AGE[RATE] + 1) is None
    assert decode_token(S, tok, RATE).expired(NOW + MAX_AGE[RATE] + 1)  # authentic, but expired
    assert verify_token(S, tok, RATE, now=NOW + 10, max_age={RATE: 5}) is None
    assert verify_token(S, tok, RATE, now=NOW - 3600) is None  # issued an hour "in the future"


def test_kind_confusion_is_refused():
    opened = make_token(S, OPEN, "n#1", "email", issued_at=NOW)
    assert verify_token(S, opened, CLICK, now=NOW) is None
    assert verify_token(S, opened, RATE, now=NOW) is None
    assert verify_token(S, make_token(S, RATE, "n#1", None, issued_at=NOW), UNSUBSCRIBE, now=NOW) is None
    # changing the kind byte of an open token into a click one breaks the MAC
    raw = bytearray(_raw(opened))
    raw[1] = tr.KINDS[CLICK]
    assert decode_token(S, _b64(bytes(raw))) is None


def test_a_click_target_cannot_be_changed():
    tok = make_token(S, CLICK, "n#1", "email", url="https://a.example/x", issued_at=NOW)
    raw = _raw(tok)
    forged = raw.replace(b"https://a.example/x", b"https://evil.example")
    forged = forged[:-16 - len(b"https://evil.example") - 1] + bytes([len(b"https://evil.example")]) + \
        forged[-16 - len(b"https://evil.example"):]
    assert b"evil.example" in forged and decode_token(S, _b64(forged)) is None
    same_length = raw.replace(b"a.example", b"e.example")
    assert decode_token(S, _b64(same_length)) is None
    url = tr.click_url("https://a.example/x", "n#1", "email", BASE, S)
    assert "a.example" not in url and "?" not in url  # the target travels inside the signed token only


@pytest.mark.parametrize("target", ["javascript:alert(1)", "//evil.example", "ftp://a.example/", "https://",
                                    "https://a.example/\r\nSet-Cookie: x", "data:text/html,x"])
def test_only_web_targets(target):
    with pytest.raises(ValueError):
        make_token(S, CLICK, "n#1", "email", url=target)


def test_token_arguments():
    with pytest.raises(ValueError):
        make_token(S, CLICK, "n#1", "email")  # a click needs its target
    with pytest.raises(ValueError):
        make_token(S, OPEN, "n#1", "email", url="https://a.example/")
    with pytest.raises(ValueError):
        make_token(S, "bounce", "n#1", "email")
    with pytest.raises(ValueError):
        make_token(S, OPEN, "", "email")


def test_links_for_templates():
    links = tr.links_for("n#1", "email", BASE + "/", S, issued_at=NOW)
    assert set(links) == {"rating", "unsubscribe"}
    assert links["rating"].startswith(BASE + "/t/r/") and links["unsubscribe"].startswith(BASE + "/t/u/")
    tok = links["rating"].rsplit("/", 1)[1]
    assert verify_token(S, tok, RATE, now=NOW).notification_id == "n#1"
    with pytest.raises(ValueError):
        tr.links_for("n#1", "email", "herald.example.com", S)


def test_rewrite_text_links():
    text = ("详情见 https://a.example/jobs?id=1&x=2。更多:https://b.example/p_(1) 和 [职位](https://c.example/j), "
            f"评价:{BASE}/t/r/abc, mail hr@example.com, end https://d.example/x.")
    out = tr.rewrite_links(text, "n#1", "email", BASE, S, issued_at=NOW)
    tokens = re.findall(re.escape(BASE) + r"/t/c/([A-Za-z0-9_-]+)", out)
    targets = [verify_token(S, t, CLICK, now=NOW).url for t in tokens]
    assert targets == ["https://a.example/jobs?id=1&x=2", "https://b.example/p_(1)", "https://c.example/j",
                       "https://d.example/x"]
    assert f"{BASE}/t/r/abc" in out  # our own links are left alone
    assert out.endswith(".") and "hr@example.com" in out and "[职位](" in out
    assert tr.rewrite_links(out, "n#1", "email", BASE, S, issued_at=NOW) == out  # idempotent
    assert tr.rewrite_links(None, "n#1", "email", BASE, S) is None


def test_rewrite_html_links_and_pixel():
    html = ('<html><body><p><a class="x" href="https://a.example/?a=1&amp;b=2">职位</a> '
            "<a href='mailto:hr@example.com'>mail</a> <a href=\"#top\">top</a></p></body></html>")
    out = tr.rewrite_links(html, "n#1", "email", BASE, S, html=True, issued_at=NOW)
    hrefs = re.findall(r'href="([^"]*)"', out)
    tok = htmllib.unescape(hrefs[0]).rsplit("/", 1)[1]
    assert verify_token(S, tok, CLICK, now=NOW).url == "https://a.example/?a=1&b=2"
    assert "mailto:hr@example.com" in out and 'href="#top"' in out
    with_pixel = tr.add_pixel(out, "n#1", "email", BASE, S, issued_at=NOW)
    assert with_pixel.index("<img") < with_pixel.index("</body>")
    src = re.search(r'<img src="([^"]+)"', with_pixel).group(1)
    assert src.startswith(BASE + "/t/o/") and src.endswith(".gif")
    assert verify_token(S, src[len(BASE) + 5:-4], OPEN, now=NOW).notification_id == "n#1"
    assert tr.add_pixel("<p>hi</p>", "n#1", "email", BASE, S).startswith("<p>hi</p><img ")


def test_track_message_wraps_only_template_links_in_html():
    source = '{% block email_html %}<a href="https://a.example/x?a=1&amp;b=2">x</a> <a href="{{ site }}">y</a>' \
             '<a href="https://a.example/u/{{ id }}">z</a>{% endblock %}'
    links = tr.template_links(source)
    assert "https://a.example/x?a=1&b=2" in links and not any("{" in u for u in links)
    email = Message("email", "见 https://a.example/x", subject="s",
                    html='<a href="https://a.example/x?a=1&amp;b=2">x</a> <a href="https://site.example/">y</a>'
                         '<a href="https://a.example/u/7">z</a>')
    out = tr.track_message(email, "n#1", BASE, S, links=links, issued_at=NOW)
    hrefs = [htmllib.unescape(h) for h in re.findall(r'href="([^"]*)"', out.html)]
    assert hrefs[0].startswith(BASE + "/t/c/") and hrefs[1:] == ["https://site.example/", "https://a.example/u/7"]
    assert out.body == email.body and "/t/o/" in out.html and out.subject == "s"  # plain text: the real URL
    sms = Message("sms", "见 https://a.example/x")
    assert tr.track_message(sms, "n#1", BASE, S, links=links) is sms
    ding = Message("dingtalk", "[x](https://a.example/x)")
    assert tr.track_message(ding, "n#1", BASE, S, links={"https://a.example/x"}) is ding


def test_tracking_secret(tmp_path):
    def cfg(tracking: dict) -> Config:
        return replace(load_config(root=tmp_path, env={})[0], tracking=TrackingSettings.parse(tracking))

    assert tr.tracking_secret(cfg({"secret": S}), required=True) == S
    assert tr.tracking_secret(cfg({}), required=False) == tr.PLACEHOLDER_SECRET
    assert tr.tracking_secret(None, required=False) == tr.PLACEHOLDER_SECRET
    for bad in ({}, {"secret": ""}, {"secret": "short"}, {"secret": tr.PLACEHOLDER_SECRET}):
        with pytest.raises(tr.TrackingConfigError):
            tr.tracking_secret(cfg(bad), required=True)
    # a link rendered by a dry-run (placeholder secret) is refused by a daemon with the real secret
    tok = make_token(tr.PLACEHOLDER_SECRET, RATE, "n#1", "email")
    assert verify_token(S, tok, RATE) is None
