"""Channels: one module per transport, and the registry that builds a transport from a channel's config."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope, Receipt, SendResult, Transport

if TYPE_CHECKING:
    from engine.config.settings import ChannelConfig

# transport name -> "module:Class", imported only when a channel uses it
TRANSPORTS = {
    "outbox": "engine.channels.outbox:OutboxTransport",
    "smtp": "engine.channels.smtp:SMTPTransport",
    "webhook": "engine.channels.webhook:WebhookTransport",
    "dingtalk-robot": "engine.channels.dingtalk_robot:DingTalkRobotTransport",
    "dingtalk-work-notice": "engine.channels.dingtalk:DingTalkWorkNoticeTransport",
    "aliyun-sms": "engine.channels.aliyun_sms:AliyunSmsTransport",
}


def transport_class(name: str) -> Any:
    target = TRANSPORTS.get(name)
    if target is None:
        raise ValueError(f"unknown transport {name!r} (known: {', '.join(sorted(TRANSPORTS))})")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def build_transport(channel: ChannelConfig, limiter_for: Callable[[int, float], Any] | None = None) -> Transport:
    """The transport for a ChannelConfig (engine.config.settings); ValueError names a bad or missing setting.

    limiter_for(limit, window): a RateLimiter shared beyond this process (the store's: every replica), for a
    transport whose provider limits sends per sender (its class's `rate_limit`); None keeps its own limiter."""
    cls = transport_class(channel.transport)
    if channel.transport == "outbox":
        return cls(channel.name, channel.settings.get("directory", "outbox"))
    limits = getattr(cls, "rate_limit", None)
    shared = limiter_for(*limits) if limits is not None and limiter_for is not None else None
    if shared is not None:
        return cls(channel.name, channel.settings, limiter=shared)
    return cls(channel.name, channel.settings)


__all__ = [
    "ACCEPTED",
    "PERMANENT",
    "RECOVERABLE",
    "TRANSPORTS",
    "Envelope",
    "Receipt",
    "SendResult",
    "Transport",
    "build_transport",
    "transport_class",
]
