"""Presentation of sources for the command line: what `herald sources test` shows, the unmapped list."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING
from collections.abc import Iterator

from engine.sources.base import IGNORED, OUTCOME, UNMAPPED, WITHDRAW
from engine.sources.receive import Preview

if TYPE_CHECKING:
    from engine.store.sources import SourceEventRow


def preview_lines(name: str, p: Preview) -> Iterator[str]:
    """The event as parsed, the outcome it maps to (or why not), and where the rules would send it."""
    if p.event is None:
        yield f"{name}: not an event herald can read: {p.error}"
        return
    e = p.event
    yield f"event {e.event_id}: {e.action}" + (f" (application {e.application_id})" if e.application_id else "")
    m = p.mapped
    if m is None:
        yield p.error or "no outcome"
        return
    if m.status == IGNORED:
        yield f"ignored: {m.error}"
    elif m.status == WITHDRAW:
        yield f"withdraws outcome {m.outcome_id} (its queued notifications are cancelled)"
    elif m.status == UNMAPPED:
        yield f"unmapped: {m.error}" + (f" [field {m.field}]" if m.field else "")
        yield "  kept with the raw event for a person: add the value under `map:` in herald.yaml"
    elif m.status == OUTCOME:
        yield "outcome: " + json.dumps(m.record, ensure_ascii=False, sort_keys=True)
        plan = p.plan
        if plan is not None:
            held = (m.record or {}).get("approved") is False
            if plan.rule is None:
                yield f"route: unmatched ({plan.error or 'no rule matches'}): it would wait for a person"
            else:
                when = plan.send_at.isoformat() if plan.send_at else "no send time"
                yield (f"route: rule {plan.rule}, template {plan.template}, channels {', '.join(plan.channels)}, "
                       f"send at {when}" + (" after approval (approve: manual)" if held else ""))
                if plan.error:
                    yield f"  warning: {plan.error}"


def unmapped_line(row: SourceEventRow) -> str:
    from engine.store import utc

    received = utc(row.received_at)
    return (f"{row.source}\t{row.event_id}\t{received.isoformat(timespec='seconds') if received else '-'}\t"
            f"{row.outcome_id or '-'}\t{row.status}: {row.error}")
