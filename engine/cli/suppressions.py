"""`herald suppressions`: how one entry of the suppression list is shown."""
from __future__ import annotations

from datetime import UTC, datetime

from engine.store.suppressions import SuppressionRow


def entry_line(r: SuppressionRow) -> str:
    """`channel  address  since  by  why  [notification]`, one line."""
    since = datetime.fromtimestamp(r.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    via = f"  (from {r.notification_id})" if r.notification_id else ""
    return f"{r.channel:<9} {r.address:<32} {since}  by {r.actor or '-'}: {r.reason or '-'}{via}"
