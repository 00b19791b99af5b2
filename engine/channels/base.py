"""The transport interface: an Envelope in, a SendResult out, never 'sent' when the provider refused."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from collections.abc import Mapping

# A send's outcome is a value the store records too: it lives in engine.model (the store imports no
# transport) and is re-exported here, part of the transport interface.
from engine.model import ACCEPTED as ACCEPTED
from engine.model import PERMANENT as PERMANENT
from engine.model import RECOVERABLE as RECOVERABLE
from engine.model import SendResult as SendResult

# SendResult codes after which the provider may have taken the message although herald heard no answer (a read
# timeout, a connection broken after the request left). A transport that can look such an attempt up (aliyun-sms)
# gets them listed in envelope.meta["unanswered"] and must not send again when the provider has it.
UNANSWERED_CODES = frozenset({"timeout", "network"})


@dataclass(frozen=True)
class Envelope:
    """One message for one channel and one address, ready to hand to a transport."""

    notification_id: str
    attempt_key: str           # idempotency key: stable across retries of the same attempt
    channel: str
    to: str                    # e-mail address, phone number, DingTalk userid or URL
    body: str
    subject: str | None = None
    html: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)  # e.g. SMS template parameters
    sender: str | None = None  # e-mail From set by the rule file's company.sender (else the channel's `from`)
    meta: Mapping[str, Any] = field(default_factory=dict)    # outcome id, rule id, template, locale...

    def record(self, *, params: bool = False) -> dict[str, Any]:
        """The envelope as the JSON document the outbox writes and the webhook posts (params: the outbox's too)."""
        out: dict[str, Any] = {"notification": self.notification_id, "attempt_key": self.attempt_key,
                               "channel": self.channel, "to": self.to, "subject": self.subject, "body": self.body,
                               "html": self.html}
        if params:
            out["params"] = dict(self.params)
        out["meta"] = dict(self.meta)
        return out


@dataclass(frozen=True)
class Receipt:
    """A delivery or engagement report for an earlier send: delivered, failed, read, replied."""

    provider_id: str
    event: str                  # delivered | undelivered | read | replied
    at: str | None = None       # ISO 8601
    detail: Mapping[str, Any] = field(default_factory=dict)


class Transport(Protocol):
    """A way to send on one channel. Implementations must be safe to call from worker threads."""

    name: str

    def send(self, envelope: Envelope) -> SendResult: ...

    def check(self) -> list[str]:
        """Problems with settings, credentials or reachability; [] when all is well. Sends nothing to candidates."""
        ...
