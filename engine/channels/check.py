"""`herald channels check`: each configured channel's settings, credentials and reachability, messaging no one."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.channels import build_transport

if TYPE_CHECKING:
    from engine.config.settings import ChannelConfig, Config


@dataclass(frozen=True)
class ChannelReport:
    """What checking one channel found: [] problems means it is ready."""

    channel: str
    transport: str
    problems: tuple

    @property
    def ok(self) -> bool:
        return not self.problems


def check_channel(channel: ChannelConfig) -> ChannelReport:
    """Build the channel's transport (settings) and ask it to check itself (credentials, reachability)."""
    try:
        transport = build_transport(channel)
    except (ValueError, TypeError) as e:  # a missing or bad setting: the message names it, never its value
        return ChannelReport(channel.name, channel.transport, (str(e),))
    try:
        problems = tuple(transport.check())
    except Exception as e:  # noqa: BLE001 - a transport bug must not hide the other channels' results
        problems = (f"check failed: {type(e).__name__}",)
    finally:
        close = getattr(transport, "close", None)
        if callable(close):
            close()
    return ChannelReport(channel.name, channel.transport, problems)


def check_channels(config: Config, only: tuple = ()) -> list[ChannelReport]:
    """Every configured channel (or those named in `only`), checked concurrently, in config order."""
    channels = [c for name, c in config.channels.items() if not only or name in only]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(channels)))) as pool:
        return list(pool.map(check_channel, channels))
