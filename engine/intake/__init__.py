"""The front door: decode, gate (schema, dedup, approval), CSV, batches stored in one transaction, dead letters.

Every way in (dry-run, `herald test`, `ingest`, `post`, HTTP) goes through this package.

The names other packages use are exported here (`__all__`) and imported from their submodule on first use
(engine/exports.py): importing one submodule does not import its siblings, so the CLI's lazy imports stay cheap.
"""
from __future__ import annotations

from typing import Any

from engine.exports import exported, resolve

_EXPORTS = {
    "batch": ("ItemStatus", "intake", "planned"),
    "decode": ("Item", "items_of", "parse_text", "read_items", "split_body"),
    "gate": ("AMENDED", "DUPLICATE", "Gate", "GateResult", "HELD", "INVALID", "OK", "check_record", "judge"),
    "group": ("GroupCommit",),
    "schemafast": ("Unsupported", "compile_check", "ecma_regex"),
}
__all__ = exported(_EXPORTS)


def __getattr__(name: str) -> Any:
    return resolve(__name__, _EXPORTS, name)
