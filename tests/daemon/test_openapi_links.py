"""The OpenAPI document links every operation that takes an outcome, notification or reply id from an answer that
yields one, so schemathesis's stateful phase (tests/daemon/test_daemon_schemathesis.py) reaches it with a real id
instead of 404s on made-up ones."""
from __future__ import annotations

import re

IDS = ("outcome_id", "notification_id", "reply_id")


def test_every_operation_taking_an_id_is_the_target_of_a_link(api):
    client, _store = api
    doc = client.get("/openapi.json").json()
    targets, needing = set(), set()
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for answer in op.get("responses", {}).values():
                targets |= {link["operationId"] for link in answer.get("links", {}).values()}
            if any(f"{{{name}}}" in path or re.search(rf"\{{{name}:", path) for name in IDS):
                needing.add(op["operationId"])
    assert needing >= {"route", "cancel", "reschedule", "send_now", "handle_reply", "approve", "withdraw"}
    assert sorted(needing - targets) == []


def test_links_name_fields_the_answers_have(api):
    client, _store = api
    doc = client.get("/openapi.json").json()
    answer = client.post("/v1/outcomes", json=[{"id": "l1", "decision": "reject", "stage": "onsite",
                                                "candidate": {"name": "Ann", "email": "ann@example.com"}}]).json()
    reply = client.post("/v1/replies", json={"notification_id": answer["items"][0]["notification"],
                                             "content": "thanks"}).json()
    bodies = {"post_outcomes": answer, "post_reply": reply}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for response in op.get("responses", {}).values():
                for link in response.get("links", {}).values():
                    for expr in link["parameters"].values():
                        pointer = expr.removeprefix("$response.body#/").split("/")
                        value = bodies[op["operationId"]]
                        for part in pointer:
                            value = value[int(part)] if isinstance(value, list) else value[part]
                        assert isinstance(value, str | int) and value, (path, expr, value)
