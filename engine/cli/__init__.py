"""Presentation for the command line (tables, colours, explanations): cli.py's commands call the engine and print with these.

The names other packages use are exported here (`__all__`) and imported from their submodule on first use
(engine/exports.py): importing one submodule does not import its siblings, so the CLI's lazy imports stay cheap.
"""
from __future__ import annotations

from typing import Any

from engine.exports import exported, resolve

_EXPORTS = {
    "desk": ("operator", "register"),
    "dryrun": ("Summary", "TABLE_HEADER", "explain_lines", "message_lines", "progress", "table_row"),
    "report": ("format_item", "render"),
    "sources": ("preview_lines", "unmapped_line"),
    "suppressions": ("entry_line",),
}
__all__ = exported(_EXPORTS)


def __getattr__(name: str) -> Any:
    return resolve(__name__, _EXPORTS, name)
