"""What each transport can do, in one table: the name sets elsewhere (config, SMS rendering, dispatch) derive from it.

This module imports no transport, so validation and config code may read it (issue 13's import rules). Each
transport class carries its row as `capabilities`; tests/channels/test_capabilities.py checks the classes, the
derived name sets and the per-transport parts of schemas/config.schema.json against this table and the
transports' SETTINGS specs.
"""
from __future__ import annotations

from dataclasses import dataclass

NO_RECEIPTS, DELIVERY, READ = "none", "delivery", "read"


@dataclass(frozen=True)
class Capabilities:
    """address: the candidate field the transport sends to (None: the channel's own destination, e.g. a group
    robot or a URL); template_sms: sends a provider-approved template with parameters, not herald's text;
    receipts: none, delivery (delivered/undelivered reports) or read (read reports too); one_click_unsubscribe:
    carries an RFC 8058 one-click unsubscribe link."""

    address: str | None = None
    template_sms: bool = False
    receipts: str = NO_RECEIPTS
    one_click_unsubscribe: bool = False


CAPABILITIES: dict[str, Capabilities] = {
    "outbox": Capabilities(),
    "smtp": Capabilities(address="candidate.email", one_click_unsubscribe=True),
    "webhook": Capabilities(),
    "dingtalk-robot": Capabilities(),
    "dingtalk-work-notice": Capabilities(address="candidate.dingtalk_userid", receipts=READ),
    "aliyun-sms": Capabilities(address="candidate.phone", template_sms=True, receipts=DELIVERY),
}


def transports_where(**wanted: object) -> frozenset[str]:
    """The transport names whose capabilities have every given value; `addressed=True` means any address."""
    addressed = wanted.pop("addressed", None)
    return frozenset(name for name, c in CAPABILITIES.items()
                     if all(getattr(c, k) == v for k, v in wanted.items())
                     and (addressed is None or (c.address is not None) == addressed))


ADDRESSED = transports_where(addressed=True)          # send to one person's address
TEMPLATE_SMS = transports_where(template_sms=True)
READ_RECEIPTS = transports_where(receipts=READ)       # escalation waits for a read, not a delivery
DELIVERY_RECEIPTS = READ_RECEIPTS | transports_where(receipts=DELIVERY)
