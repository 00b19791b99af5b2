"""The operator's desk: what HR and operators read and do with the outcomes and messages in the store — shared by
the HTTP API (engine/daemon/desk_routes.py), the CLI (engine/cli/desk.py) and the web console, so all three show
the same rows and do the same things with the same checks.

Reads (views.py), each a `Page` of frozen rows with an opaque keyset cursor for the next page (paging.py):
`held`, `unmatched`, `dead_letters`, `queue` (notifications by state, time range and channel; `day_bounds`
gives today's range), `candidates` (by outcome id, name, e-mail or phone), `replies`, `audit`; `day_counts` (a day's events by
rule and channel, and what waits for a person); and `history`
(an outcome's revisions and changes, notifications with attempts and events, replies, ratings and the audit
entries), `pauses`, `would_send` (the message each channel would get if a held outcome were approved now).

Actions (actions.py: outcomes; control.py: the queue and sending), each appended to the audit log with its
actor and reason: `approve`, `withdraw`, `route_by_hand`, `retry_unmatched`, `cancel`, `reschedule`,
`send_now`, `pause`, `resume` (all channels or one; the pause lives in the store, so every replica's
dispatcher honours it, and intake goes on), `handle_reply`, `resubmit` (a corrected dead letter through the
intake gate). A refused action raises ActionError (code 404/409/422) and changes nothing; a bad cursor or
limit raises DeskError.

Times are epoch seconds (floats, UTC) in and out, as in the store; every function takes `now` explicitly.
"""
from __future__ import annotations

from engine.desk.actions import ActionError, ActionResult, approve, retry_unmatched, route_by_hand, withdraw
from engine.desk.control import QueueResult, cancel, handle_reply, pause, reschedule, resubmit, resume, send_now
from engine.desk.paging import DeskError, Page
from engine.desk.views import (
    Candidate,
    DayCounts,
    History,
    audit,
    candidates,
    day_bounds,
    day_counts,
    dead_letters,
    held,
    history,
    pauses,
    queue,
    replies,
    unmatched,
    would_send,
)

__all__ = [
    "ActionError", "ActionResult", "Candidate", "DayCounts", "DeskError", "History", "Page", "QueueResult", "approve", "audit",
    "cancel", "candidates", "day_bounds", "day_counts", "dead_letters", "handle_reply", "held", "history", "pause", "pauses",
    "queue", "replies", "reschedule", "resubmit", "resume", "retry_unmatched", "route_by_hand", "send_now",
    "unmatched", "withdraw", "would_send",
]
