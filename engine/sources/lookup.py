"""Detail look-ups in a provider's API, shared by the kinds whose events carry ids only (lever, feishu).

`retrying(once, ...)` runs one look-up up to ATTEMPTS times with exponential backoff: `once()` raises
`Retry(why)` for what may pass (network errors are caught here too, 429 and 5xx are the kind's to raise),
EventError for what will not. When every attempt failed, DetailsUnavailable keeps the event as `pending`
for `herald sources resubmit`. Messages name the look-up and the status, never a credential.
"""
from __future__ import annotations

from typing import TypeVar
from collections.abc import Callable

import httpx

from engine.sources.base import DetailsUnavailable, SourceEvent

ATTEMPTS = 4
BACKOFF_S = 0.25  # 0.25, 0.5, 1 s between the attempts of one look-up
TIMEOUT_S = 10.0

T = TypeVar("T")


class Retry(Exception):
    """A look-up answer worth trying again (HTTP 429 or 5xx, the provider's rate-limit code)."""


def retrying(once: Callable[[], T], what: str, shell: SourceEvent, sleep: Callable[[float], None]) -> T:
    """`once()`'s answer, retried with backoff; DetailsUnavailable (the event kept as pending) after ATTEMPTS."""
    why = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            return once()
        except httpx.HTTPError as e:
            why = type(e).__name__
        except Retry as e:
            why = str(e)
    raise DetailsUnavailable(f"{what} failed {ATTEMPTS} times ({why}): kept as pending, `herald sources "
                             "resubmit` completes it", shell.event_id, shell.application_id, shell.action)
