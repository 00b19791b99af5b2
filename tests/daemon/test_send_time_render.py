"""Render at send time: a queued message goes out with the templates current when it is sent (the rule chosen at
routing stays), the outbox records the file and its hash; when its template is gone it is held, never sent with
another template. Real daemons watching their deployment, time scaled so an hour's delay passes in seconds."""
from __future__ import annotations

import hashlib

import httpx
import pytest

from daemon_support import RULES, TEMPLATE, make_deployment, outbox, outcome, post, wait_for


def version(d) -> str:
    return httpx.get(d.url + "/healthz").json()["ruleset"]


def events(d, nid: str) -> list:
    return httpx.get(d.url + "/v1/notifications/" + nid.replace("#", "%23")).json()["events"]


@pytest.mark.slow
def test_a_wording_fix_reaches_a_queued_message(deploy, daemons):
    d = daemons(deploy, watch=True, time_scale=300)       # the hold rule's hour passes in 12 s
    old = version(d)
    assert post(d.url, outcome("st-1", decision="hold")).json()["items"][0]["status"] == "matched"
    fixed = TEMPLATE.replace("MARK", "fixed wording")
    (deploy / "templates" / "any" / "generic.j2").write_text(fixed)
    wait_for(lambda: version(d) != old, timeout=10)
    sent = wait_for(lambda: [m for m in outbox(deploy) if m["meta"].get("outcome") == "st-1"], timeout=30)
    assert "fixed wording" in sent[0]["body"]
    assert sent[0]["meta"]["template_sha256"] == hashlib.sha256(fixed.encode()).hexdigest()
    assert sent[0]["meta"]["template_file"].endswith("templates/any/generic.j2")


@pytest.mark.slow
def test_a_removed_template_holds_the_notification(deploy, daemons):
    d = daemons(deploy, watch=True, time_scale=300)
    old = version(d)
    post(d.url, outcome("st-2", decision="hold"))
    (deploy / "templates" / "any" / "renamed.j2").write_text(TEMPLATE.replace("MARK", "other"))
    (deploy / "rules" / "10-rules.yaml").write_text(RULES.replace("any/generic", "any/renamed"))
    (deploy / "templates" / "any" / "generic.j2").unlink()
    wait_for(lambda: version(d) != old, timeout=10)
    held = wait_for(lambda: [e for e in events(d, "st-2#1") if e["kind"] == "deferred"], timeout=30)
    assert "held: template any/generic no longer exists" in held[0]["detail"]["reason"]
    assert not [m for m in outbox(deploy) if m["meta"].get("outcome") == "st-2"]   # never sent with another


@pytest.mark.slow
def test_a_render_error_is_recorded_with_its_template_line(tmp_path, daemons):
    """The send path's RenderFailed carries the located error: the reason the store records for the channel
    that could not carry the message begins with the template's path:line, once, then what went wrong."""
    root = make_deployment(tmp_path)
    template = root / "templates" / "any" / "generic.j2"  # line 3: the email block, failing only for "Zed"
    template.write_text(template.read_text().replace(
        "{% block email %}Hello", '{% block email %}{{ 1 // (candidate.name != "Zed") }}Hello'))
    d = daemons(root)
    post(d.url, outcome("st-3", candidate={"name": "Zed", "email": "zed@example.com", "phone": "+8613800000000"}))
    fell = wait_for(lambda: [e for e in events(d, "st-3#1") if e["kind"] == "escalated"], timeout=30)
    reason = fell[0]["detail"]["reason"]
    assert reason.startswith(f"email: {template}:3: block email: "), reason
    assert "division" in reason and reason.count(str(template)) == 1 and "cannot render" not in reason
    sent = wait_for(lambda: [m for m in outbox(root) if m["meta"].get("outcome") == "st-3"], timeout=30)
    assert sent[0]["channel"] == "sms"   # the next channel carried it


@pytest.mark.slow
def test_each_rule_file_sends_with_its_own_company_and_sender(tmp_path, daemons):
    from daemon_support import make_deployment

    office = RULES.replace("version: 1\n", 'version: 1\ncompany: {name: Shanghai Office, sender: "SH HR <hr-sh@example.com>"}\n')
    root = make_deployment(tmp_path, rules=office, mark="from {{ company.name }}")
    (root / "herald.yaml").write_text((root / "herald.yaml").read_text() + "company: {name: Head Office}\n")
    (root / "rules" / "20-brand.yaml").write_text(
        "version: 1\ncompany: {name: Brand B, sender: hr@brand-b.example}\n"
        "rules:\n  - {id: brand, match: {decision: pass}, template: any/generic, channels: [email], locale: en,"
        " timezone: UTC}\n")
    d = daemons(root)
    post(d.url, outcome("co-1", decision="reject"))
    post(d.url, outcome("co-2", decision="pass"))
    sent = wait_for(lambda: {m["meta"]["outcome"]: m for m in outbox(root) if m["channel"] == "email"}
                    if len([m for m in outbox(root) if m["channel"] == "email"]) >= 2 else None, timeout=30)
    assert "from Shanghai Office" in sent["co-1"]["body"] and sent["co-1"]["from"] == "SH HR <hr-sh@example.com>"
    assert "from Brand B" in sent["co-2"]["body"] and sent["co-2"]["from"] == "hr@brand-b.example"
