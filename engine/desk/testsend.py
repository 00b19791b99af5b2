""""Send a test to me" (the console's Preview page): one rendered message handed to the channel's real transport,
addressed to the signed-in operator, never to a candidate. It is recorded as a test in the audit log (action
`send_test`: who, which channel and address, rule, template, the transport's answer) and nowhere else: no
notification, attempt or event is stored, so the report never counts it and no candidate's history shows it."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from engine.channels.base import RECOVERABLE, Envelope, SendResult
from engine.desk.actions import ActionError
from engine.model import CHANNEL_ADDRESS, Message, Plan
from engine.store import Store

TEST_SUBJECT = "[TEST] "


def operator_address(channel: str, email: str | None) -> str | None:
    """Where a test on `channel` goes for an operator with this e-mail address: e-mail channels only (an account
    has an e-mail address, not a phone number or a DingTalk id); None when there is nowhere to send it."""
    return email if email and CHANNEL_ADDRESS.get(channel) == "candidate.email" else None


@dataclass(frozen=True)
class SentTest:
    """A test message handed to a transport: where it went and what the transport answered."""

    channel: str
    to: str
    status: str
    provider_id: str | None
    error: str | None


def send_test(store: Store, transport: Any, plan: Plan, channel: str, to: str, now: float, actor: str,
              outcome_id: str | None = None) -> SentTest:
    """Sends `plan`'s message for `channel` through `transport` to `to` (the operator's own address), the subject
    marked as a test; records it in the audit log. ActionError 422 when the plan has no message for the channel."""
    message: Message | None = next((m for m in plan.messages if m.channel == channel), None)
    if message is None:
        raise ActionError(422, f"no message for {channel}: {plan.error or 'the rule does not send on it'}")
    key = f"test-{uuid.uuid4().hex}"
    env = Envelope(notification_id=key, attempt_key=key, channel=channel, to=to, body=message.body,
                   subject=(TEST_SUBJECT + message.subject) if message.subject else None, html=message.html,
                   meta={"test": True, "actor": actor, "outcome": outcome_id, "rule": plan.rule,
                         "template": plan.template, "locale": plan.locale})
    try:
        result: SendResult = transport.send(env)
    except Exception as e:  # noqa: BLE001 - a transport bug is a failed test, shown to the operator
        result = SendResult(RECOVERABLE, error=f"transport raised {type(e).__name__}")
    sent = SentTest(channel, to, result.status, result.provider_id, result.error)
    store.record_action("send_test", actor, at=now, target=f"{channel}: {to}", outcome_id=None,
                        detail={"test": True, "rule": plan.rule, "template": plan.template, "locale": plan.locale,
                                "outcome": outcome_id, "status": sent.status, "provider_id": sent.provider_id,
                                "error": sent.error})
    return sent
