"""The transport interface: an Envelope in, a SendResult out, never 'sent' when the provider refused."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from collections.abc import Mapping

ACCEPTED = "accepted"        # the provider took it; provider_id identifies it for receipts
RECOVERABLE = "recoverable"  # try the same channel again later (timeouts, 5xx, rate limits)
PERMANENT = "permanent"      # this channel will not work for this message: go to the next channel


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
    meta: Mapping[str, Any] = field(default_factory=dict)    # outcome id, rule id, template, locale...


@dataclass(frozen=True)
class SendResult:
    """What happened: accepted (with the provider's id), a recoverable or a permanent failure."""

    status: str
    provider_id: str | None = None
    error: str | None = None     # human-readable, never containing secrets
    code: str | None = None      # the provider's error code, when it gave one
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == ACCEPTED


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
