"""Tracking: signed tokens, the links templates use (rating, unsubscribe, click, open pixel), the candidate's pages and
their HTTP routes.

The names other packages use are exported here (`__all__`) and imported from their submodule on first use
(engine/exports.py): importing one submodule does not import its siblings, so the CLI's lazy imports stay cheap.
"""
from __future__ import annotations

from typing import Any

from engine.exports import exported, resolve

_EXPORTS = {
    "routes": ("ReportCollector", "record_reply", "tracking_router"),
    "tokens": ("PLACEHOLDER_SECRET", "links_for", "template_links", "track_message", "tracking_secret"),
}
__all__ = exported(_EXPORTS)


def __getattr__(name: str) -> Any:
    return resolve(__name__, _EXPORTS, name)
