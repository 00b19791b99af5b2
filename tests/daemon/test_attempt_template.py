"""What an attempt records of its template: an e-mail subject or SMS body that renders empty is a failed attempt on
that channel with a clear error (the next channel is tried), and every attempt carries the hash of the template
file used, shown in the notification's attempt records. Real daemons, real outbox."""
from __future__ import annotations

import hashlib

import httpx
import pytest

from daemon_support import TEMPLATE, make_deployment, outbox, outcome, post, wait_for

BLANK_SUBJECT = TEMPLATE.replace("{% block subject %}Interview result{% endblock %}",
                                 "{% block subject %}{{ position.title }}{% endblock %}")


def detail(d, nid: str) -> dict:
    return httpx.get(d.url + "/v1/notifications/" + nid.replace("#", "%23")).json()


@pytest.mark.slow
def test_an_empty_subject_fails_the_attempt_and_falls_back(tmp_path, daemons):
    root = make_deployment(tmp_path)                       # reject: email, then sms
    text = BLANK_SUBJECT.replace("MARK", "v1")
    (root / "templates" / "any" / "generic.j2").write_text(text)
    d = daemons(root)
    assert post(d.url, outcome("blank-1")).json()["items"][0]["status"] == "matched"   # no position
    sent = wait_for(lambda: [m for m in outbox(root) if m["meta"].get("outcome") == "blank-1"])
    assert [m["channel"] for m in sent] == ["sms"]          # never a blank e-mail
    doc = wait_for(lambda: (lambda x: x if x["state"] in ("sent", "delivered") else None)(detail(d, "blank-1#1")))
    email, sms = doc["attempts"]
    assert email["channel"] == "email" and email["status"] == "permanent"
    assert "the e-mail subject renders empty" in email["error"] and "templates/any/generic.j2" in email["error"]
    assert sms["channel"] == "sms" and sms["status"] == "accepted"
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert email["template_hash"] == sms["template_hash"] == digest


@pytest.mark.slow
def test_the_attempt_records_the_hash_of_the_template_sent(deploy, daemons):
    d = daemons(deploy)
    post(d.url, outcome("hash-1"))
    sent = wait_for(lambda: [m for m in outbox(deploy) if m["meta"].get("outcome") == "hash-1"])
    doc = wait_for(lambda: (lambda x: x if x["attempts"] and x["attempts"][0]["status"] == "accepted" else None)(
        detail(d, "hash-1#1")))
    assert doc["attempts"][0]["template_hash"] == sent[0]["meta"]["template_sha256"]
    on_disk = (deploy / "templates" / "any" / "generic.j2").read_bytes()
    assert doc["attempts"][0]["template_hash"] == hashlib.sha256(on_disk).hexdigest()
